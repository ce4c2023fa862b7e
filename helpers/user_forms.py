"""Real crystals in the forms users hand them in (notebook 03): does ``classify`` name them as reliably as their
small cells, whatever the supercell, its orientation and its defects?

The crystals are hand-built with ASE at the elements' own lattice parameters (not drawn by notebook 01's
generator), of the five classes a user most often meets: hcp, beta-Sn, fcc, bcc and diamond. Each comes as its
small cell and as supercells repeated (6, 6, 6), unevenly (10, 5, 5) and (9, 6, 6), and 8 x 8 x 8, each pristine,
with 25 % vacancies and with displacements of sigma = 2 % of the nearest-neighbour distance, turned by a random
rotation.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.spacegroup import crystal

from . import defects
from .structures import random_rotation, rotate

#: class -> {element: small cell}; lattice parameters in Angstrom (ASE's reference values where it has them)
REAL_CRYSTALS = {
    "hex_rh": {e: bulk(e, "hcp") for e in ("Mg", "Ti", "Co", "Zr", "Be", "Zn", "Cd")},
    "bct_141": {"Sn": crystal("Sn", [(0, 0, 0)], spacegroup=141, cellpar=[5.832, 5.832, 3.182, 90, 90, 90])},
    "fcc": {e: bulk(e, "fcc") for e in ("Cu", "Al", "Ni", "Ag", "Au", "Pt", "Pb")},
    "bcc": {e: bulk(e, "bcc") for e in ("W", "Fe", "Cr", "Mo", "Na", "Ta", "V")},
    "diam": {e: bulk(e, "diamond") for e in ("Si", "C", "Ge")},
}
REPEATS = {"(6, 6, 6)": (6, 6, 6), "(10, 5, 5)": (10, 5, 5), "(9, 6, 6)": (9, 6, 6), "8 x 8 x 8": (8, 8, 8)}
DEFECTS = ("pristine", "25 % vacancies", "sigma = 2 %")


def forms(small: Atoms, rng: np.random.Generator, repeats: dict = REPEATS) -> list:
    """[(form, defect, structure)]: the small cell as given, and every repeat ({name: (n1, n2, n3)}) with every
    defect, turned."""
    out = [("small cell", "pristine", small)]
    for name, reps in repeats.items():
        big = small.repeat(reps)
        for defect in DEFECTS:
            atoms = (defects.vacancies(big, 0.25, rng) if defect == "25 % vacancies"
                     else defects.displacements(big, 0.02, rng) if defect == "sigma = 2 %" else big)
            out.append((name, defect, rotate(atoms, random_rotation(rng))))
    return out


def study(model, seed: int = 0, n_mc: int = 10, n_jobs: int | None = None, progress: bool = True):
    """Classify every real crystal in every form (module docstring) with ``model`` (trained on the paper's
    protocol). Returns (per structure, summary): the summary has one row per form and one column per defect
    with the share named right, and the number of structures."""
    import pandas as pd

    from .classify import classify

    rng = np.random.default_rng([seed, 41])
    rows = []
    for truth, cells in REAL_CRYSTALS.items():
        for element, small in cells.items():
            for form, defect, atoms in forms(small, rng):
                rows.append({"class": truth, "element": element, "form": form, "defect": defect,
                             "n_atoms_given": len(atoms), "atoms": atoms})
    table = classify([r["atoms"] for r in rows], model=model, n_mc=n_mc, seed=seed, orientation="standard",
                     n_jobs=n_jobs, progress=progress)
    per = pd.DataFrame(rows).drop(columns="atoms")
    per["predicted_class"] = table["predicted_class"].to_numpy()
    per["probability"] = table["probability"].to_numpy()
    per["prepared"] = table["prepared"].to_numpy()
    per["error"] = table["error"].to_numpy()
    per["right"] = per["predicted_class"] == per["class"]
    summary = (per.pivot_table(index="form", columns="defect", values="right", aggfunc="mean", sort=False)
               .reindex(index=["small cell", *REPEATS], columns=list(DEFECTS)))
    summary["n per cell"] = sum(len(cells) for cells in REAL_CRYSTALS.values())  # one structure per crystal
    return per, summary.reset_index()
