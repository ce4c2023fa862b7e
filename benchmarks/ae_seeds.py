"""How much the dense autoencoder's Table 5 row depends on its seed (``make ae-seeds``).

The report's dense autoencoder (Table 2: 12288-128-64-2-64-128-12288, ReLU, tanh output, Adam, MSE, 10 epochs) squeezes
each fingerprint into two numbers, and K-Means then cuts that plane into seven clusters. This script trains it on
01's balanced training fingerprints once per seed, with the report's ReLU code and with a linear code (the same
network, no ReLU on the two code units, so no unit can switch off for every input), and scores K-Means and the
Gaussian mixture exactly as notebook 05 does. Each seed sets the weights, the shuffling and the clustering.

    python benchmarks/ae_seeds.py [--seeds 0 1 2 3 4] [--epochs 10]

Writes benchmarks/results/ae_seeds.json and .md, with the CPU it ran on (the json keeps each training's seconds; this
is a study of accuracy, not a timing). Needs 01 and 02 at the default size.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from helpers import clustering, config, datasets, machine, models

RESULTS = Path(__file__).resolve().parent / "results"


def measure(seeds, epochs: int, expect: dict) -> dict:
    models.keras_module()
    train = datasets.load_fingerprints("train", expect)
    X, y = clustering.flatten(train.X), np.asarray(train.y)
    rows = []
    for code in ("relu", "linear"):
        for seed in seeds:
            start = time.perf_counter()
            ae, encoder = clustering.dense_autoencoder(seed, code_activation=code)
            clustering.train_autoencoder(ae, X, epochs=epochs, seed=seed, progress=False)
            E = clustering.encode(encoder, X)
            fitted = clustering.cluster_and_score(E, y, seed)
            rows.append({"code": code, "seed": int(seed), "K-Means": fitted["K-Means"]["accuracy"],
                         "Gaussian mixture": fitted["Gaussian mixture"]["accuracy"],
                         "units active": [float(v) for v in (E > 0).mean(axis=0)],
                         "seconds": time.perf_counter() - start})
            print(json.dumps(rows[-1]), flush=True)
    return {"machine": machine.describe(), "n": int(len(X)), "epochs": epochs, "rows": rows}


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = ["# The dense autoencoder's Table 5 row, seed by seed", "",
             f"CPU: {m['cpu']}, {m['cores']} cores ({' '.join(m['vector_flags'])}). {result['n']} balanced training "
             f"fingerprints of 01, {result['epochs']} epochs; the report's K-Means row: 86.81 %.", "",
             "| code | seed | K-Means | Gaussian mixture | share of inputs on which each code unit is > 0 |",
             "|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['code']} | {r['seed']} | {100 * r['K-Means']:.2f} % | {100 * r['Gaussian mixture']:.2f} % | "
                     + " / ".join(f"{100 * v:.1f} %" for v in r["units active"]) + " |")
    lines += ["", "| code | K-Means lowest | mean | highest | seeds at or above 86.81 % |", "|---|---|---|---|---|"]
    for code in ("relu", "linear"):
        k = np.array([r["K-Means"] for r in result["rows"] if r["code"] == code])
        if len(k):
            lines.append(f"| {code} | {100 * k.min():.2f} % | {100 * k.mean():.2f} % | {100 * k.max():.2f} % | "
                         f"{int((k >= 0.8681).sum())} of {len(k)} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-per-class", type=int, default=1500)
    args = parser.parse_args(argv)
    result = measure(args.seeds, args.epochs, {"data_seed": 0, "n_per_class": args.n_per_class, "n_test_per_class": 200})
    RESULTS.mkdir(exist_ok=True)
    config.write_text(RESULTS / "ae_seeds.json", json.dumps(result, indent=1))
    config.write_text(RESULTS / "ae_seeds.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
