"""Does anything beyond the paper's plain recipe help on the paper's protocol? (``make recipe``, after ``make run``)

Trains the network of notebook 03 on the training fingerprints that ``make run`` left in data/ (the paper's
protocol: standard orientation), once per configuration, same data, same seed, and scores each on the three
held-out sets, one fingerprint per structure:

* the paper's recipe in float32 (the reference), and in mixed bfloat16 (is the faster arithmetic sound?);
* the recipe with each addition built for randomly oriented crystals (per-pixel standardisation, augmentation,
  weight averaging), and with all three, in the arithmetic that ``precision="auto"`` picks on this machine.

Writes figures/tables/recipe_study.{csv,md} (with the CPU and the date) and prints the table.

    make recipe          # or: .venv/bin/python benchmarks/recipe_study.py [--epochs 5] [--only plain-float32 ...]
"""
from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

import numpy as np

from helpers import config, datasets, machine, models

CONFIGS = {
    "plain-float32": {"precision": "float32"},
    "plain-bfloat16": {"precision": "mixed_bfloat16"},
    "standardise": {"standardise": True},
    "augment": {"augment": True},
    "average-weights": {"average_weights": True},
    "all-three": {"standardise": True, "augment": True, "average_weights": True},
}
SETS = ("test_pristine", "test_vacancies", "test_displacements")


def main(argv=None) -> int:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="training seed (the data are whatever data/ holds)")
    parser.add_argument("--only", nargs="*", choices=list(CONFIGS))
    args = parser.parse_args(argv)
    train = datasets.load_fingerprints("train")
    if train.meta["params"].get("orientation") != "standard":
        raise SystemExit("data/ holds randomly oriented data; this study is about the paper's protocol: run "
                         "`make run` (notebook 01's default orientation = \"standard\") first")
    tests = {name: datasets.load_fingerprints(name) for name in SETS}
    auto = models.resolve_precision("auto")
    print(f"CPU: {machine.describe_text()}; precision 'auto' here: {auto}")
    print(f"data: {len(train)} training fingerprints ({train.meta['params']}), {args.epochs} epochs, seed {args.seed}")
    rows = []
    for name in args.only or list(CONFIGS):
        options = {"standardise": False, "augment": False, "average_weights": False, "precision": auto,
                   **CONFIGS[name]}
        start = time.perf_counter()
        model, info = models.train(train.X, train.y, epochs=args.epochs, seed=args.seed, progress=False,
                                   standardise=options["standardise"], average_weights=options["average_weights"],
                                   elements=train["element"] if options["augment"] else None,
                                   precision=options["precision"])
        row = {"configuration": name, "precision": info["precision"], "seconds": f"{time.perf_counter() - start:.1f}",
               "best_epoch": info["best_epoch"], "validation": info["best_val_accuracy"]}
        for set_name, fps in tests.items():
            row[set_name] = float(np.mean(models.predict_proba(model, fps.X).argmax(axis=1) == fps.y))
        rows.append(row)
        print("  " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
              flush=True)
    table = pd.DataFrame(rows)
    stamp = f"measured {datetime.now(timezone.utc):%Y-%m-%d} on {machine.describe_text()}"
    markdown = (f"Held-out accuracy, one fingerprint per structure, {len(train)} training fingerprints, {args.epochs} "
                f"epochs, seed {args.seed}; {stamp}.\n\n"
                + config.markdown_table(table.assign(**{c: table[c].map(lambda v: f"{100 * v:.2f} %")
                                                        for c in ("validation", *SETS)})))
    path = config.save_table("recipe_study", table, markdown=markdown)
    print(f"\n{markdown}\nwrote {path} and {path.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
