"""How far defects move the fingerprint's scale (``make scale``): the bias table behind tests/test_neighbours.py.

For every prototype, ``--n`` prepared supercells (about 256 atoms, the paper's protocol); for each, the scale of
the pristine supercell and of copies with displacements (sigma a fraction of the parent's nearest-neighbour
distance) and with vacancies. Bias = mean over the supercells of scale(defective) / scale(pristine) - 1, in per
cent, for the fingerprint's estimate (``nn_scale``) and for the plain mean of each atom's shortest distance that
the original code used. Also the worst correlation of a defective supercell's fingerprint with its parent's.
Writes figures/tables/scale_bias.{csv,md}.

    make scale          # or: .venv/bin/python benchmarks/scale_bias.py --n 20
"""
from __future__ import annotations

import argparse

import numpy as np

from helpers import config, defects, structures
from helpers.compare import correlation
from helpers.fingerprint import diffraction_fingerprint
from helpers.neighbours import mean_nearest_neighbour_distance, nn_scale

SIGMAS = (0.001, 0.006, 0.01, 0.02, 0.04, 0.08)
FRACTIONS = (0.01, 0.1, 0.25, 0.5)
BOUNDS = "bounds: 0.3 % at sigma <= 2 %, 0.5 % at sigma = 4 %, 0.3 % up to 50 % vacancies"


def main(argv=None) -> int:
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="supercells per prototype")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rows = []
    for k, name in enumerate(structures.PROTOTYPES):
        proto = structures.PROTOTYPES[name]
        rng = np.random.default_rng([args.seed, k])
        est, plain, corr = {}, {}, {}
        done = 0
        while done < args.n:
            parent = structures.draw_parent(proto.class_name, rng)
            if parent.prototype != name or parent.space_group != proto.space_group:
                continue
            done += 1
            atoms = structures.prepared_parent(parent, rng)
            scale0, plain0, fp0 = nn_scale(atoms), mean_nearest_neighbour_distance(atoms), diffraction_fingerprint(atoms)
            copies = [(f"sigma {100 * s:g} %", defects.displacements(atoms, s, rng, nn_distance=parent.nn_distance))
                      for s in SIGMAS]
            copies += [(f"vacancies {100 * f:g} %", defects.vacancies(atoms, f, rng)) for f in FRACTIONS]
            for key, copy in copies:
                est.setdefault(key, []).append(nn_scale(copy) / scale0 - 1)
                plain.setdefault(key, []).append(mean_nearest_neighbour_distance(copy) / plain0 - 1)
                corr.setdefault(key, []).append(correlation(fp0, diffraction_fingerprint(copy)))
        for key in est:
            rows.append({"prototype": name, "defect": key, "bias_percent": 100 * float(np.mean(est[key])),
                         "plain_bias_percent": 100 * float(np.mean(plain[key])),
                         "min_correlation": float(np.min(corr[key])), "mean_correlation": float(np.mean(corr[key]))})
        print(f"{name:9s} " + "  ".join(f"{key}: {100 * np.mean(v):+.3f}" for key, v in est.items()), flush=True)
    table = pd.DataFrame(rows)
    worst = table.assign(abs_bias=table.bias_percent.abs()).groupby("defect", sort=False).agg(
        worst_bias_percent=("abs_bias", "max"), worst_plain_bias_percent=("plain_bias_percent", lambda v: v.abs().max()),
        min_correlation=("min_correlation", "min"), mean_correlation=("mean_correlation", "mean")).reset_index()
    markdown = (f"Worst prototype per defect level, {args.n} supercells each ({BOUNDS}):\n\n"
                + config.markdown_table(worst, ".4f"))
    config.save_table("scale_bias", table, markdown=markdown)
    print("\n" + markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
