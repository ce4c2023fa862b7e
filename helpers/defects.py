"""Point defects on prepared supercells (docs/science.md, preparation step 4), usable at any level."""
from __future__ import annotations

import numpy as np
from ase import Atoms

from .neighbours import mean_nearest_neighbour_distance


def vacancies(atoms: Atoms, fraction: float, rng: np.random.Generator) -> Atoms:
    """A copy with ``int(N * fraction)`` randomly chosen atoms removed (0 <= fraction < 1)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"vacancy fraction must be in [0, 1), got {fraction}")
    n = len(atoms)
    n_remove = int(n * fraction)
    if n - n_remove < 2:
        raise ValueError(f"removing {n_remove} of {n} atoms leaves fewer than 2; lower the fraction")
    keep = np.sort(rng.choice(n, size=n - n_remove, replace=False))
    return atoms[keep]


def displacements(atoms: Atoms, sigma: float, rng: np.random.Generator,
                  nn_distance: float | None = None) -> Atoms:
    """A copy with Gaussian noise added to every Cartesian coordinate of every atom.

    The standard deviation is ``sigma`` times the mean nearest-neighbour distance (of the atoms as
    given, or ``nn_distance`` in Angstrom when the pristine value is known).
    """
    if not sigma >= 0.0:
        raise ValueError(f"sigma must be >= 0 (a fraction of the nearest-neighbour distance), got {sigma}")
    if nn_distance is None:
        nn_distance = mean_nearest_neighbour_distance(atoms)
    out = atoms.copy()
    out.positions = atoms.positions + rng.normal(0.0, sigma * nn_distance, size=(len(atoms), 3))
    return out
