"""Fingerprint speed: the fast batch path against the complex128 reference, measured in the same run.

Structures: prepared ~256-atom supercells of all seven classes (216-270 atoms), half of them displaced
(sigma = 2 % of the NN distance); no vacancies, which would lower the atom count. Timed: everything
`diffraction_fingerprints` does (checks, the nearest-neighbour scale, five patterns, form factors, solid angle,
mask, normalisation), including starting its worker processes. Targets: >= 200 structures/s on 2 cores, and
>= 90x the complex128 reference measured in the same run, every pixel within 1e-4 of it.

``--isa avx2`` runs the same measurement with numpy's, OpenBLAS's and numba's code limited to AVX2 + FMA (as on
a CPU without AVX-512): the instruction sets of such a machine, not its clock, caches or memory.

    make bench                      # native, then --isa avx2; or: .venv/bin/python benchmarks/bench_fingerprint.py
"""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from helpers import defects, machine, structures
from helpers.fingerprint import diffraction_fingerprint, diffraction_fingerprints
from helpers.neighbours import nn_scale
from helpers.parallel import default_n_jobs

TARGET = 200.0
TARGET_RATIO = 90.0
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: What limits numpy (2.4's dispatch names), OpenBLAS and numba to AVX2 + FMA on a CPU that has more.
AVX2_ONLY = machine.ISA_PROFILES["avx2"]  # numpy, OpenBLAS, numba (and oneDNN) held to AVX2 + FMA


def load_reference():
    spec = importlib.util.spec_from_file_location("reference_fingerprint", ROOT / "tests" / "reference_fingerprint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_fingerprint


def make_structures(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        parent = structures.draw_parents(structures.CLASSES[i % 7], 1, "train", seed, 0.2, rng)[0]
        atoms = structures.prepared_parent(parent, rng)
        if i % 2:
            atoms = defects.displacements(atoms, 0.02, rng, nn_distance=parent.nn_distance)
        out.append(atoms)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=600, help="structures for the fast path")
    parser.add_argument("--n-reference", type=int, default=7, help="structures for the reference")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the fast path (median reported)")
    parser.add_argument("--isa", choices=["native", "avx2"], default="native",
                        help="avx2: limit numpy, OpenBLAS and numba to AVX2 + FMA (module docstring)")
    args = parser.parse_args()
    if args.isa == "avx2" and os.environ.get("NUMBA_CPU_NAME") != AVX2_ONLY["NUMBA_CPU_NAME"]:
        sys.exit(subprocess.call([sys.executable, *sys.argv], env={**os.environ, **AVX2_ONLY}))

    atoms = make_structures(args.n)
    n_atoms = np.array([len(a) for a in atoms])
    print(f"CPU: {machine.describe_text()}")
    print(f"{args.n} structures, {n_atoms.min()}-{n_atoms.max()} atoms (mean {n_atoms.mean():.0f}), "
          f"{default_n_jobs()} cores")

    diffraction_fingerprints(atoms[:40], progress=False)  # warm caches (form factors, orbits)
    diffraction_fingerprint(atoms[0])  # and in this process
    isa = "native" if args.isa == "native" else f"AVX2 + FMA only ({' '.join(f'{k}={v}' for k, v in AVX2_ONLY.items())})"
    print(f"instruction sets used: {isa}")
    runs = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fast = diffraction_fingerprints(atoms, progress=False)
        runs.append(args.n / (time.perf_counter() - start))
    rate = float(np.median(runs))

    start = time.perf_counter()
    for a in atoms[:100]:
        diffraction_fingerprint(a)
    single_rate = 100 / (time.perf_counter() - start)

    reference = load_reference()
    start = time.perf_counter()
    slow = [reference(a, nn_distance=nn_scale(a)) for a in atoms[: args.n_reference]]
    ref_rate = args.n_reference / (time.perf_counter() - start)
    worst = max(float(np.max(np.abs(f - s))) for f, s in zip(fast, slow))

    result = {
        "fast_structures_per_s": round(rate, 1), "fast_runs": [round(r, 1) for r in runs],
        "one_process_structures_per_s": round(single_rate, 1),
        "reference_structures_per_s": round(ref_rate, 2), "ratio_fast_to_reference": round(rate / ref_rate, 1),
        "max_abs_difference_to_reference": worst, "target_structures_per_s": TARGET,
        "target_met": rate >= TARGET, "target_ratio": TARGET_RATIO, "ratio_target_met": rate / ref_rate >= TARGET_RATIO,
        "within_1e-4": worst <= 1e-4, "instruction_sets": args.isa, "machine": machine.describe(),
    }
    print(f"fast path ({default_n_jobs()} processes): {rate:7.1f} structures/s median  (runs: "
          f"{', '.join(f'{r:.1f}' for r in runs)})")
    print(f"fast path (one process)     : {single_rate:7.1f} structures/s")
    print(f"complex128 reference        : {ref_rate:7.2f} structures/s")
    print(f"ratio fast / reference      : {rate / ref_rate:7.1f}x")
    print(f"max |fast - reference|      : {worst:.2e} on {args.n_reference} structures")
    print(f"target >= {TARGET:.0f} structures/s  : {'met' if rate >= TARGET else 'NOT met'}")
    print(f"target >= {TARGET_RATIO:.0f}x reference   : {'met' if rate / ref_rate >= TARGET_RATIO else 'NOT met'}")
    print(json.dumps(result))
    from helpers import config

    config.write_text(RESULTS / f"bench_fingerprint_{args.isa}.json", json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
