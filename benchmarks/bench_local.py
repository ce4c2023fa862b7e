"""The local-structure map on large snapshots: time and peak memory, beside PTM and a-CNA on the same atoms.

A periodic fcc copper crystal with displacements of 6 % of the nearest-neighbour distance per coordinate, at each
size asked for (default 100,000 and 1,000,000 atoms), mapped by ``helpers.local.structure_map`` with its default
window and stride on a Dask LocalCluster of every core, writing its chunks to a folder as they finish. The peak
memory is the summed proportional set size of this process and all its descendants (the cluster's workers
included), sampled every 0.25 s. OVITO's PTM and adaptive CNA run on the same atoms in the same run: the references.
Targets: 100,000 atoms in at most 10 min on 2 cores; 1,000,000 atoms with a peak of at most 4 GiB.

    python benchmarks/bench_local.py [--atoms 100000 1000000] [--isa avx2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from helpers import config, machine

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SECONDS = {100_000: 600.0}
TARGET_GIB = {1_000_000: 4.0}


def snapshot(n_atoms: int, seed: int = 0):
    from ase.build import bulk

    side = max(2, int(np.ceil((n_atoms / 4) ** (1 / 3))))  # at least n_atoms
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(side)
    atoms.positions += np.random.default_rng(seed).normal(0, 0.06 * 3.615 / np.sqrt(2), atoms.positions.shape)
    return atoms


def measure(sizes) -> dict:
    from helpers import local, peers
    from helpers.series import PeakMemory

    rows = []
    for n in sizes:
        atoms = snapshot(n)
        folder = Path(tempfile.mkdtemp(prefix="bench_local_"))
        try:
            with PeakMemory(include_self=True) as memory:
                start = time.perf_counter()
                done = threading.Event()

                def report():  # the peak so far, once a minute, so a long run shows where it stands
                    while not done.wait(60):
                        print(f"  {len(atoms)} atoms, {time.perf_counter() - start:.0f} s: peak so far "
                              f"{memory.peak / 2 ** 30:.2f} GiB", flush=True)

                threading.Thread(target=report, daemon=True).start()
                mapped = local.structure_map(atoms, out=folder, progress=False)
                seconds = time.perf_counter() - start
                done.set()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        _, rates = peers.all_methods(atoms)
        rows.append({"atoms": len(atoms), "windows": int(mapped.info["local_windows_total"]), "seconds": seconds,
                     "atoms_per_second": len(atoms) / seconds, "peak_memory_gib": memory.peak / 2 ** 30,
                     "named_fcc": float(np.mean(mapped.arrays["local_class"] == "fcc")), "peers_atoms_per_second": rates})
        print(rows[-1], flush=True)
    return {"machine": machine.describe(), "isa": machine.isa_profile(), "cores": os.cpu_count(), "rows": rows}


def markdown(result: dict) -> str:
    lines = [f"# The local-structure map on large snapshots ({machine.ISA_TEXT.get(result['isa'], result['isa'])})",
             "", f"CPU: {machine.describe_text()}. fcc Cu, σ = 6 % of the NN distance; default window and stride; a "
             "Dask LocalCluster of every core; PTM and a-CNA (OVITO) on the same atoms in the same run.", "",
             "| atoms | windows | seconds | atoms/s | peak memory (GiB) | named fcc | PTM atoms/s | a-CNA atoms/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        p = r["peers_atoms_per_second"]
        lines.append(f"| {r['atoms']} | {r['windows']} | {r['seconds']:.1f} | {r['atoms_per_second']:.0f} | "
                     f"{r['peak_memory_gib']:.2f} | {100 * r['named_fcc']:.2f} % | {p['PTM (default cutoff)']:.0f} | "
                     f"{p['a-CNA']:.0f} |")
    lines.append("")
    for r in result["rows"]:
        for n, limit in TARGET_SECONDS.items():
            if abs(r["atoms"] - n) < 0.1 * n:
                lines.append(f"Target {n} atoms in at most {limit:.0f} s: {'met' if r['seconds'] <= limit else 'not met'} "
                             f"({r['seconds']:.1f} s).")
        for n, limit in TARGET_GIB.items():
            if abs(r["atoms"] - n) < 0.1 * n:
                lines.append(f"Target {n} atoms with a peak of at most {limit} GiB: "
                             f"{'met' if r['peak_memory_gib'] <= limit else 'not met'} ({r['peak_memory_gib']:.2f} GiB).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--atoms", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--isa", choices=list(machine.ISA_PROFILES), default="native")
    args = parser.parse_args(argv)
    code = machine.rerun_under(args.isa, __file__, sys.argv[1:] if argv is None else argv)
    if code is not None:
        return code
    result = measure(args.atoms)
    stem = f"bench_local_{args.isa}"
    config.write_text(RESULTS / f"{stem}.json", json.dumps(result, indent=1))
    text = markdown(result)
    path = config.write_text(RESULTS / f"{stem}.md", text)
    print(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
