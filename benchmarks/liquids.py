"""Liquids against solids: does ``classify`` mark a molten metal as not to be trusted, and leave a hot solid alone?

For the seven fcc metals ASE's EMT describes: molecular-dynamics snapshots of the solid at 0.25, 0.5 and 0.75 Tm
(:func:`helpers.snapshots.thermal_snapshot`) and of the liquid at 2 Tm (:func:`helpers.snapshots.liquid_snapshot`:
melted at 4 Tm, then held at 2 Tm), 500 atoms each, periodic, turned at random, classified by ``classify`` as a
user would (``model="auto"``, its defaults). Beside each: how far the atoms moved from their starting sites (rms per
coordinate, in nearest-neighbour distances) and the share of atoms that OVITO's adaptive common-neighbour analysis
(a-CNA) names no crystal structure ("Other"), the peer's own check that a liquid is one.

Uses the models in the data folder (``make run``), or, where it has none, the default-size models shipped in
helpers/pretrained (the table says which, with the thresholds they carry).

    make liquids        # -> benchmarks/results/liquids.md (about 15 minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SOLID_FRACTIONS = (0.25, 0.5, 0.75)
LIQUID_FRACTION = 2.0


def _models_folder() -> str:
    from helpers import config, models

    try:
        models.check_saved_model(None, "paper"), models.check_saved_model(None, "any_orientation")
        return f"the data folder ({config.data_dir()})"
    except (FileNotFoundError, models.StaleDataError):
        os.environ["CRYSTAL_DATA_DIR"] = str(models.PRETRAINED_DIR)
        return "the models shipped in helpers/pretrained"


def snapshots_of(elements, repeat: int, seed: int) -> list:
    """[(element, T/Tm, phase, Atoms turned at random, rms displacement / NN, a-CNA 'Other' share)]."""
    from tqdm.auto import tqdm

    from helpers import peers, snapshots
    from helpers.structures import random_rotation, rotate

    rng = np.random.default_rng(seed)
    jobs = [(e, f, "solid") for e in elements for f in SOLID_FRACTIONS] + [(e, LIQUID_FRACTION, "liquid")
                                                                           for e in elements]
    out = []
    for element, fraction, phase in tqdm(jobs, desc="molecular dynamics", unit="snapshot"):
        if phase == "solid":
            atoms = snapshots.thermal_snapshot(element, fraction, repeat=repeat, seed=seed)
        else:
            atoms = snapshots.liquid_snapshot(element, fraction, repeat=repeat, seed=seed)
        nn = snapshots.nn_distance(snapshots.bulk(element, "fcc", cubic=True))
        moved = snapshots.rms_displacement(atoms) / nn
        other = float(np.mean(peers.adaptive_cna(atoms) == "other"))
        plain = atoms.copy()
        for name in list(plain.arrays):
            if name not in ("numbers", "positions"):
                del plain.arrays[name]
        out.append((element, fraction, phase, rotate(plain, random_rotation(rng)), moved, other))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elements", nargs="+", default=None, help="default: the seven EMT metals")
    parser.add_argument("--repeat", type=int, default=5, help="cubic cells a side (4 repeat^3 atoms)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "liquids.md")
    args = parser.parse_args()

    where = _models_folder()
    import warnings

    import pandas as pd

    from helpers import machine, models, snapshots, trust
    from helpers.classify import classify

    elements = args.elements or sorted(snapshots.MELTING_POINT_K)
    start = time.perf_counter()
    made = snapshots_of(elements, args.repeat, args.seed)
    md_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        answers = classify([m[3] for m in made], seed=args.seed)
    classify_seconds = time.perf_counter() - start
    table = pd.DataFrame({
        "metal": [m[0] for m in made], "T / Tm": [m[1] for m in made], "phase": [m[2] for m in made],
        "atoms": [len(m[3]) for m in made], "rms displacement / NN": [m[4] for m in made],
        "a-CNA 'Other' (%)": [100 * m[5] for m in made],
        "model": answers["model"].str.split(" \\(").str[0], "predicted class": answers["predicted_class"],
        "probability": answers["probability"], "mutual information (nats)": answers["mutual_information"],
        "threshold (nats)": answers["trust_threshold"], "trusted": answers["trusted"], "verdict": answers["verdict"],
        "error": answers["error"]})
    liquid, solid = table[table.phase == "liquid"], table[table.phase == "solid"]
    marked = int((liquid.trusted == False).sum())  # noqa: E712 (None: no threshold, not a mark)
    flagged = int((solid.trusted == False).sum())  # noqa: E712
    thresholds = {kind: trust.threshold_of(models.check_saved_model(None, kind)[1])
                  for kind in ("paper", "any_orientation")}
    cpu = machine.describe()
    lines = [
        "# Liquids against solids: what classify marks as not to be trusted",
        "",
        f"Written by `make liquids` (benchmarks/liquids.py), seed {args.seed}, {args.repeat}³ fcc cells "
        f"({4 * args.repeat ** 3} atoms), turned at random. CPU: {cpu['cpu']}, {cpu['cores']} cores, flags "
        f"{' '.join(cpu['vector_flags'])}. Models: {where}; thresholds (mutual information, nats): "
        + ", ".join(f"{k} {'none calibrated' if v is None else f'{v:.4f}'}" for k, v in thresholds.items()) + ".",
        "",
        f"- **Liquids at {LIQUID_FRACTION:g} Tm marked** (untrusted, or no crystalline order found): "
        f"**{marked} of {len(liquid)}**.",
        f"- **Solids at {', '.join(f'{f:g}' for f in SOLID_FRACTIONS)} Tm marked**: **{flagged} of {len(solid)}**.",
        f"- Molecular dynamics {md_seconds:.0f} s, classify {classify_seconds:.0f} s for {len(table)} snapshots.",
        "",
        table.to_markdown(index=False, floatfmt=".4g"),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    from helpers import provenance

    provenance.write_text(args.out, "\n".join(lines))
    provenance.write_text(args.out.with_suffix(".json"), json.dumps(
        {"liquids_marked": marked, "liquids": len(liquid), "solids_marked": flagged, "solids": len(solid),
         "thresholds": thresholds, "models": where, "machine": cpu, "rows": table.to_dict(orient="records")},
        indent=1, default=provenance.jsonable))
    print("\n".join(lines[:8]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
