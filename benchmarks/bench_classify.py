"""What a user pays for ``classify`` with the orientation-free model: structures per second, 16 views and the
Monte-Carlo-dropout head, against the one-view-at-a-time way measured in the same run.

Structures: the 25 real crystals of ``helpers.user_forms`` (hand-built with ASE at the elements' own lattice
parameters), each as a randomly turned supercell of 5-8 cells a side (a periodic crystal, re-cut in its own
orientation) and as a 256-atom cluster cut from it (no cell), 50 structures in all. Timed, after the model is
loaded and one warm-up call:

* **classify**: ``classify(..., model="any_orientation")`` end to end: reading, re-cutting or cutting the cluster,
  16 views per structure (each worker computes all views of its structures, checks and scale once; one forward
  pass per view, batched), and 50 dropout passes of the head;
* **reference**: the same prepared structures, one view at a time: every view's fingerprints computed over the whole
  batch (:func:`helpers.orientations.view_fingerprints`, the scale estimated again in every view) and a forward
  pass per view, then the same head. This is how the views were computed before they shared work.

Also the start-up a script pays once (importing Keras and TensorFlow, loading the model). Needs notebook 07's model
(``make run``, or notebook 07 alone at any size: speed does not depend on the weights).

    make bench-classify            # or: .venv/bin/python benchmarks/bench_classify.py --repeats 3
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def real_structures(seed: int = 0) -> list:
    """[(name, Atoms)]: every real crystal of helpers.user_forms as a turned supercell and as a 256-atom cluster."""
    from helpers import user_forms
    from helpers.classify import cluster_block
    from helpers.structures import random_rotation, rotate

    rng = np.random.default_rng(seed)
    out = []
    for class_name, crystals in user_forms.REAL_CRYSTALS.items():
        for element, small in crystals.items():
            n = max(5, int(np.ceil((400 / len(small)) ** (1 / 3))))
            big = small.repeat((n, n, n))
            out.append((f"{element} {class_name} {n}x{n}x{n}", rotate(big, random_rotation(rng))))
            out.append((f"{element} {class_name} cluster", rotate(cluster_block(big, 256)[0], random_rotation(rng))))
    return out


def reference(model, prepared: list, n_views: int, n_mc: int, seed: int) -> dict:
    """The views one at a time over the whole batch, then the same Monte-Carlo head."""
    from helpers import models, orientations

    features = np.stack([models.dense_features(model, orientations.view_fingerprints(prepared, v, seed))
                         for v in range(n_views)])
    return orientations.orientation_mc_dropout(model, [], n_orientations=n_views, n_samples=n_mc, seed=seed,
                                               features=features)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--views", type=int, default=16)
    ap.add_argument("--mc", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each (median reported)")
    args = ap.parse_args()

    t0 = time.perf_counter()
    from helpers import config, machine, models
    from helpers.classify import prepare_any_orientation, classify

    model, meta = models.load_model(kind="any_orientation")
    startup = time.perf_counter() - t0
    target = int(meta.get("data", {}).get("params", {}).get("target_atoms", 256))
    inputs = real_structures()
    names, atoms = [n for n, _ in inputs], [a for _, a in inputs]
    print(f"CPU: {machine.describe_text()}")
    print(f"{len(atoms)} structures ({sum('cluster' in n for n in names)} clusters), {args.views} views, "
          f"{args.mc} dropout passes; start-up (import, load model): {startup:.1f} s")

    classify(atoms[:4], model="any_orientation", n_orientations=args.views, n_mc=args.mc)  # warm-up
    fast, ref = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        table = classify(atoms, model="any_orientation", n_orientations=args.views, n_mc=args.mc)
        fast.append(time.perf_counter() - t)
        t = time.perf_counter()
        prepared = [prepare_any_orientation(a, target, False)[0] for a in atoms]
        prepare_seconds = time.perf_counter() - t
        out = reference(model, prepared, args.views, args.mc, 0)
        ref.append(time.perf_counter() - t)
        print(f"  classify {fast[-1]:.2f} s, reference {ref[-1]:.2f} s (of which re-cutting {prepare_seconds:.2f} s)",
              flush=True)
    same = float(np.mean(np.array(table.predicted_class.tolist())
                         == np.array([models.CLASSES[i] for i in out["predicted"]])))
    truth = [n.split()[1] for n in names]
    right = float(np.mean(table.predicted_class.to_numpy() == np.array(truth)))
    n = len(atoms)
    result = {"machine": machine.describe(), "n_structures": n, "views": args.views, "mc_samples": args.mc,
              "startup_seconds": startup, "classify_seconds": float(np.median(fast)),
              "reference_seconds": float(np.median(ref)),
              "classify_structures_per_second": n / float(np.median(fast)),
              "reference_structures_per_second": n / float(np.median(ref)),
              "speed_up": float(np.median(ref)) / float(np.median(fast)),
              "cold_structures_per_second": n / (startup + float(np.median(fast))),
              "agreement_with_reference": same, "named_right": right,
              "models": sorted(set(table.model.dropna())), "errors": int(table.error.notna().sum())}
    lines = [f"# classify with the orientation-free model ({args.views} views, {args.mc} dropout passes)", "",
             f"Machine: {machine.describe_text()}", "",
             "| quantity | value |", "|---|---|",
             f"| structures | {n} ({sum('cluster' in n for n in names)} clusters without a cell) |",
             f"| classify, structures/s (median of {args.repeats}) | {result['classify_structures_per_second']:.2f} |",
             f"| reference (one view at a time), structures/s | {result['reference_structures_per_second']:.2f} |",
             f"| speed-up over the reference, same run | {result['speed_up']:.2f}x |",
             f"| start-up (import Keras/TensorFlow, load the model) | {startup:.1f} s |",
             f"| a script's first call, start-up included, structures/s | {result['cold_structures_per_second']:.2f} |",
             f"| same class as the reference | {100 * same:.1f} % |",
             f"| named right (these real crystals and clusters) | {100 * right:.1f} % |"]
    RESULTS.mkdir(exist_ok=True)
    config.write_text(RESULTS / "bench_classify.json", json.dumps(result, indent=1))
    config.write_text(RESULTS / "bench_classify.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
