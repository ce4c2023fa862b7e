"""Calibrate the threshold of trust of the paper's model shipped in helpers/pretrained, exactly as notebook 03 calibrates
the model it trains: Monte-Carlo dropout (50 passes, notebook 03's seed) on the defective copies at the paper's levels
that a default-size notebook 03 made and saved (data/robustness_03.npz), the 99.5 % quantile of their mutual
information (:func:`helpers.trust.calibrate`), written into helpers/pretrained/cnn_model.json.

Needed when the shipped model is not the one the last default run trained (``make pretrained`` ships the run's
models with the thresholds their notebooks wrote). The orientation-free model needs no such script: notebook 07 uses
the shipped model itself on default-size data and calibrates it.

    make run   # or notebooks 01-03 at their defaults
    .venv/bin/python benchmarks/calibrate_shipped.py
"""
from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mc-samples", type=int, default=50, help="notebook 03's mc_samples")
    parser.add_argument("--seed", type=int, default=0, help="notebook 03's seed")
    args = parser.parse_args()

    from helpers import evaluation, models, robustness, trust

    results = evaluation.load_results()
    runs = robustness.load_runs(results["params"])
    if runs is None:
        raise SystemExit("no defective copies of notebook 03 in the data folder: run notebooks 01-03 at their defaults")
    if runs["seed"] != args.seed:
        raise SystemExit(f"notebook 03 ran with seed {runs['seed']}, not {args.seed}: pass --seed {runs['seed']}")
    vacancy = [r["level"] for r in results["robustness"] if r["defect"] == "vacancies" and not r["beyond_paper"]]
    displacement = [r["level"] for r in results["robustness"] if r["defect"] == "displacements" and not r["beyond_paper"]]
    paper_levels = robustness.defect_levels(vacancy, displacement)
    calibrated_rows = runs["level_index"] < len(paper_levels)
    model, meta = models.load_model(models.PRETRAINED_DIR)
    mc = models.mc_dropout(model, runs["X"][calibrated_rows], n_samples=args.mc_samples, seed=args.seed)
    calibration = trust.calibrate(mc["mutual_information"], n_mc=args.mc_samples, views=1, seed=args.seed)
    right = mc["probability"].argmax(axis=1) == runs["label"][calibrated_rows]
    trust.record("paper", calibration, directory=models.PRETRAINED_DIR)
    print(trust.sentence(calibration, "The shipped paper's model"))
    print(f"{int(np.sum(right))} of {len(right)} of the copies named right")


if __name__ == "__main__":
    main()
