"""How much of notebook 07's held-out accuracy is the luck of one training run or one held-out draw
(``make seeds``; not part of the tests: about half an hour at the default size on 2 cores).

Needs notebook 07's randomly oriented data (``data/*_any_*.npz``, any size). For every training seed it trains the
orientation-free network as 07 does (``helpers.models.train``: Table 1, Adam 1e-3, batch 32, 10 epochs, best epoch,
standardisation, augmentation, weight averaging, ``precision="auto"``) and scores it on ``--views`` orientations of
each held-out structure (``helpers.orientations``, view rotations from ``--view-seed``, 07's ``seed``) on

* draw 0: the held-out pristine, vacancy and displacement sets of 07 (``data/structures_any_test_*.npz``), and
* draw 1 (unless ``--second-draw 0``): a second, independent draw from the same held-out groups (same split
  seed and test fraction as ``data/``, so no group is shared with training; new parents, rotations and
  vacancies from ``--second-draw``), the same size and defect level.

Reported per seed, draw and set: one fingerprint, and the views combined by the log pool (03's default) and by
the arithmetic mean, with the accuracy after 1..K views. The views' fingerprints are computed once and kept in
``--cache`` (about 1.1 GB per set at the default size); each seed's result is kept there too, so an interrupted
study resumes. Writes ``benchmarks/results/seed_study.json`` and ``.md``.

    python benchmarks/seed_study.py [--seeds 0 1 2 3 4] [--views 16] [--second-draw 20261124]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from functools import partial
from pathlib import Path

import numpy as np

from helpers import config, datasets, models, orientations, provenance, structures
from helpers.parallel import map_chunks

SETS = ("pristine", "vacancies", "displacements")
ANY = datasets.ANY_PREFIX
TARGETS = {"pristine": 0.995, "vacancies": 0.995, "displacements": 0.99}  # notebook 07's aims at 16 views
RESULTS = Path(__file__).resolve().parent / "results"


def second_draw_structures(params: dict, draw_seed: int) -> tuple:
    """Pristine and vacancy structures of new parents from the held-out groups of ``params`` (01's parameters);
    returns ({set: [Atoms]}, labels)."""
    n = int(params["n_test_per_class"])
    build = partial(datasets._build_chunk, seed=draw_seed, target_atoms=params["target_atoms"],
                    vacancy_fraction=params["vacancy_fraction"], displacement_sigma=params["displacement_sigma"],
                    orientation=params.get("orientation", "random"))
    jobs = []
    for ci, c in enumerate(structures.CLASSES):
        rng = np.random.default_rng([draw_seed, ci])
        parents = structures.draw_parents(c, n + max(30, n // 5), "test", params["data_seed"], params["test_fraction"], rng)
        jobs += [("test", ci, k, p) for k, p in enumerate(parents)]
    kept = {c: [] for c in structures.CLASSES}
    for _, chunk, results in map_chunks(build, jobs, chunk_size=32, desc="second draw", unit="structure"):
        for (_, ci, _, _), records in zip(chunk, results):
            c = structures.CLASSES[ci]
            if records is not None and len(kept[c]) < n:
                kept[c].append(records)
    short = {c: len(v) for c, v in kept.items() if len(v) < n}
    if short:
        raise RuntimeError(f"too few valid parents in the second draw: {short}; try another --second-draw")
    items = [r for c in structures.CLASSES for r in kept[c]]
    labels = np.repeat(np.arange(len(structures.CLASSES)), n)
    return {"pristine": [r[0][0] for r in items], "vacancies": [r[1][0] for r in items],
            "displacements": [r[2][0] for r in items]}, labels


def cached_views(path: Path, atoms: list, n_views: int, view_seed: int) -> np.ndarray:
    """(n_views, n, 64, 64, 3) fingerprints of every structure in every view, memory-mapped from ``path``
    (computed, written to a temporary file and renamed when missing or of another shape). Each worker computes all
    views of a few structures (:func:`helpers.fingerprint.diffraction_fingerprint_views`)."""
    from helpers.fingerprint import views_chunk

    if path.exists():
        V = np.load(path, mmap_mode="r")
        if not atoms or V.shape == (n_views, len(atoms), 64, 64, 3):
            return V
    shape = (n_views, len(atoms), 64, 64, 3)
    tmp = path.with_name(path.name + ".part")
    V = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
    rotations = tuple(orientations.view_rotation(v, view_seed) for v in range(n_views))
    for start, chunk, X in map_chunks(partial(views_chunk, rotations=rotations), atoms, chunk_size=4,
                                      progress=True, desc=path.stem, unit="structure"):
        V[:, start: start + len(chunk)] = X.transpose(1, 0, 2, 3, 4)
    V.flush()
    del V
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def score(P: np.ndarray, y: np.ndarray) -> dict:
    curve = lambda pool: [float(np.mean(orientations.combine_views(P[:k], pool).argmax(axis=1) == y))
                          for k in range(1, len(P) + 1)]
    log, linear = curve("log"), curve("linear")
    return {"one": log[0], "log": log[-1], "linear": linear[-1], "log_by_views": log, "linear_by_views": linear,
            "n": int(len(y))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--views", type=int, default=orientations.DEFAULT_ORIENTATIONS)
    ap.add_argument("--view-seed", type=int, default=0, help="03's seed: the rotations of the views")
    ap.add_argument("--second-draw", type=int, default=20261124, help="seed of the second held-out draw; 0: none")
    ap.add_argument("--epochs", type=int, default=10, help="07's default")
    ap.add_argument("--cache", type=Path, default=RESULTS / "seed_study_cache")
    args = ap.parse_args()
    n_views = orientations.check_n_orientations(args.views)
    args.cache.mkdir(parents=True, exist_ok=True)

    train = datasets.load_fingerprints(ANY + "train")
    params = train.meta["params"]
    if params.get("orientation") != "random":
        raise SystemExit(f"{datasets.fingerprint_path(ANY + 'train')} was not made in random orientations: "
                         "rerun notebook 07")
    held_out = {s: provenance.file_sha256(datasets.structure_path(f"{ANY}test_{s}")) for s in SETS}
    key = json.dumps({"params": params, "views": n_views, "view_seed": args.view_seed, "held_out": held_out,
                      "fingerprint": train.meta.get("fingerprint"),
                      "second_draw": args.second_draw}, sort_keys=True)
    tag = hashlib.sha256(key.encode()).hexdigest()[:10]  # cache files belong to these data and settings only

    draws = {0: {}}
    start = time.perf_counter()
    for s in SETS:
        fps = datasets.load_fingerprints(f"{ANY}test_{s}", {"data_seed": params["data_seed"]})
        atoms = datasets.load_structures(f"{ANY}test_{s}").all_atoms()
        draws[0][s] = (cached_views(args.cache / f"{tag}_draw0_{s}.npy", atoms, n_views, args.view_seed), fps.y)
    if args.second_draw:
        labels_path = args.cache / f"{tag}_draw1_labels.npy"
        paths = {s: args.cache / f"{tag}_draw1_{s}.npy" for s in SETS}
        atoms_by_set = None
        if not (labels_path.exists() and all(p.exists() for p in paths.values())):
            atoms_by_set, labels = second_draw_structures(params, args.second_draw)
            np.save(labels_path, labels)
        draws[1] = {s: (cached_views(paths[s], atoms_by_set[s] if atoms_by_set else [], n_views, args.view_seed),
                        np.load(labels_path)) for s in SETS}
    print(f"views ready in {time.perf_counter() - start:.0f} s", flush=True)

    results = {}
    for seed in args.seeds:
        done = args.cache / f"{tag}_seed{seed}_epochs{args.epochs}.json"
        if done.exists():
            results[seed] = json.loads(done.read_text())
            continue
        t = time.perf_counter()
        model, info = models.train(train.X, train.y, epochs=args.epochs, seed=seed, elements=train["element"],
                                   progress=True, standardise=True, average_weights=True, precision="auto")
        row = {"seed": seed, "train_seconds": time.perf_counter() - t, "best_epoch": info["best_epoch"],
               "precision": info["precision"],
               "best_val_accuracy": info["best_val_accuracy"]}
        for d, sets in draws.items():
            for s, (V, y) in sets.items():
                P = np.stack([models.predict_proba(model, np.asarray(V[v])) for v in range(n_views)])
                row[f"draw{d}_{s}"] = score(P, y)
                print(f"seed {seed}, draw {d}, {s}: one view {100 * row[f'draw{d}_{s}']['one']:.2f} %, "
                      f"{n_views} views log pool {100 * row[f'draw{d}_{s}']['log']:.2f} %, "
                      f"arithmetic mean {100 * row[f'draw{d}_{s}']['linear']:.2f} %", flush=True)
        config.write_text(done, json.dumps(row))
        results[seed] = row

    lines = [f"# Training seeds x held-out draws ({n_views} views, {args.epochs} epochs; data seed {params['data_seed']}, "
             f"{params['n_per_class']} training / {params['n_test_per_class']} held-out per class, "
             f"{100 * params['vacancy_fraction']:g} % vacancies)", "",
             "Each cell: combined by the log pool / by the arithmetic mean / one fingerprint.", "",
             "| training seed | " + " | ".join(f"draw {d}, {s}" for d in draws for s in SETS) + " |",
             "|---" * (1 + len(draws) * len(SETS)) + "|"]
    for seed, row in results.items():
        lines.append(f"| {seed} | " + " | ".join(
            " / ".join(f"{100 * row[f'draw{d}_{s}'][k]:.2f} %" for k in ("log", "linear", "one"))
            for d in draws for s in SETS) + " |")
    lines.append("| mean | " + " | ".join(
        " / ".join(f"{100 * np.mean([r[f'draw{d}_{s}'][k] for r in results.values()]):.3f} %"
                   for k in ("log", "linear", "one"))
        for d in draws for s in SETS) + " |")
    lines.append("| worst | " + " | ".join(
        " / ".join(f"{100 * np.min([r[f'draw{d}_{s}'][k] for r in results.values()]):.2f} %"
                   for k in ("log", "linear", "one"))
        for d in draws for s in SETS) + " |")
    lines += ["", f"Targets of notebook 07 ({n_views} views, log pool) and how far the worst seed is from them:", ""]
    for d in draws:
        for s in SETS:
            worst = min(r[f"draw{d}_{s}"]["log"] for r in results.values())
            lines.append(f"* draw {d}, {s}: target {100 * TARGETS[s]:.1f} %, worst seed {100 * worst:.2f} % "
                         f"({100 * (worst - TARGETS[s]):+.2f} points)")
    RESULTS.mkdir(exist_ok=True)
    config.write_text(RESULTS / "seed_study.json", json.dumps({"params": params, "views": n_views,
                                                               "view_seed": args.view_seed,
                                                               "second_draw": args.second_draw,
                                                               "results": list(results.values())}, indent=1))
    config.write_text(RESULTS / "seed_study.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
