"""Large test samples with a known answer per atom, for the local-structure map (notebook 08).

* :func:`voronoi_polycrystal`: grains of one or several lattices in random orientations, built the way
  polycrystal tools (Atomsk, ``ase``-based scripts) build them: random grain seeds in a periodic box, each grain
  filled with its own turned lattice and kept where its seed is the nearest (a Voronoi cell), and of two atoms
  closer than a fraction of the nearest-neighbour distance at a boundary one removed.
* :func:`thermal_snapshot` and :func:`coexistence_snapshot`: molecular dynamics of fcc metals with ASE's effective
  medium theory potential (``ase.calculators.emt.EMT``) and Langevin dynamics (``ase.md.langevin``).

Every sample carries per-atom arrays: ``true_class`` (one of :data:`helpers.structures.CLASSES`, or "liquid"),
``grain`` and ``boundary_distance`` (Å to the nearest grain boundary plane; for MD snapshots, to the solid-liquid
interface, or +inf for a single crystal).
"""
from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from scipy.spatial import cKDTree

from .structures import rotate

# The lattices a polycrystal can be made of: our class name and how ASE builds the conventional cell.
LATTICES = {"fcc": "fcc", "bcc": "bcc", "hcp": "hex_rh", "diamond": "diam", "sc": "sc"}

# Melting points (K) of the metals ASE's EMT describes. Experimental values: EMT's own melting points lie within
# about 15 % of them, so the fractions of notebook 08 are of these, and the snapshots are checked to be solid.
MELTING_POINT_K = {"Al": 933.5, "Cu": 1357.8, "Ag": 1234.9, "Au": 1337.3, "Ni": 1728.0, "Pd": 1828.1, "Pt": 2041.4}


def _lattice(element: str, lattice: str, a: float | None = None) -> Atoms:
    if lattice not in LATTICES:
        raise ValueError(f"unknown lattice {lattice!r}: use one of {sorted(LATTICES)}")
    kwargs = {} if a is None else {"a": a}
    if lattice == "hcp":
        return bulk(element, "hcp", **kwargs)
    return bulk(element, lattice, cubic=True, **kwargs)


def nn_distance(cell: Atoms) -> float:
    """The nearest-neighbour distance of a perfect crystal's cell (Å)."""
    big = cell.repeat((3, 3, 3))
    d, _ = cKDTree(big.positions).query(big.positions, k=2)
    return float(d[:, 1].min())


def _fill(cell: Atoms, rotation: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Positions of the turned lattice of ``cell`` (one lattice point at the origin) inside the box [lo, hi)."""
    turned = rotate(cell, rotation)
    lattice = np.asarray(turned.cell)
    corners = lo + np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * (hi - lo)
    frac = corners @ np.linalg.inv(lattice)
    first, last = np.floor(frac.min(axis=0)) - 1, np.ceil(frac.max(axis=0)) + 1
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(first, last)], indexing="ij"), -1).reshape(-1, 3)
    points = (grid @ lattice)[:, None, :] + turned.positions[None, :, :]
    points = points.reshape(-1, 3)
    inside = np.all((points >= lo) & (points < hi), axis=1)
    return points[inside]


def _seed_images(seeds: np.ndarray, box: np.ndarray) -> tuple:
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)]) * box
    images = (seeds[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
    owner = np.tile(np.arange(len(seeds)), len(shifts))
    return images, owner


def boundary_distance(positions: np.ndarray, seeds: np.ndarray, box: np.ndarray) -> tuple:
    """(grain, distance): each position's nearest seed (periodic box) and its distance (Å) to the nearest
    bisecting plane between that seed and any other seed image: the distance to its grain's boundary. Images of its
    own seed count too: where a grain meets its own periodic image the turned lattice does not continue (it is not
    periodic with the box), so that plane is a boundary as well (few grains in a small box have them)."""
    images, owner = _seed_images(seeds, box)
    d2 = ((positions[:, None, :] - images[None, :, :]) ** 2).sum(-1)
    nearest = d2.argmin(axis=1)
    grain = owner[nearest]
    own = images[nearest]
    separation = np.linalg.norm(images[None, :, :] - own[:, None, :], axis=-1)
    plane = (d2 - d2[np.arange(len(positions)), nearest][:, None]) / (2 * np.maximum(separation, 1e-12))
    plane[np.arange(len(positions)), nearest] = np.inf
    return grain, plane.min(axis=1)


def _crowded(positions: np.ndarray, grain_of: np.ndarray, box: np.ndarray, distance: float) -> np.ndarray:
    """Which atoms to remove at the grain boundaries: of two atoms closer than ``distance`` (periodic box), the one
    of the higher-numbered grain, pairs taken in a fixed order and none removed for an atom already removed."""
    tree = cKDTree(np.mod(positions, box), boxsize=box)
    pairs = tree.query_pairs(distance, output_type="ndarray")
    drop = np.zeros(len(positions), bool)
    for i, j in pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]:
        if drop[i] or drop[j]:
            continue
        drop[i if grain_of[i] > grain_of[j] else j] = True
    return drop


def voronoi_polycrystal(grains, box_size, seed: int = 0, remove_closer: float = 0.7,
                        displacement: float = 0.0) -> Atoms:
    """A periodic polycrystal of Voronoi grains in random orientations.

    Parameters
    ----------
    grains : list of (element, lattice) or (element, lattice, a)
        One entry per grain (``lattice`` in :data:`LATTICES`; ``a`` in Å, else ASE's reference value), so a
        two-phase sample is simply a list mixing two lattices.
    box_size : float or (3,) floats
        Edges of the cubic (or orthorhombic) periodic box, Å.
    seed : int
        Seeds of the grain centres, their orientations and the displacements.
    remove_closer : float
        Of two atoms of different grains closer than this fraction of the smaller nearest-neighbour distance, the
        one of the higher-numbered grain is removed.
    displacement : float
        Gaussian displacement of every atom, σ per coordinate as a fraction of its lattice's nearest-neighbour
        distance (thermal-like disorder; the true class stays that of the grain).
    """
    from .structures import random_rotation

    grains = [tuple(g) for g in grains]
    if not grains:
        raise ValueError("no grains given: pass a list of (element, lattice) pairs")
    box = np.broadcast_to(np.asarray(box_size, dtype=float), (3,)).copy()
    if np.any(box <= 0):
        raise ValueError(f"box_size must be positive, got {box_size!r}")
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, 1, (len(grains), 3)) * box
    cells = [_lattice(*g) for g in grains]
    nn = np.array([nn_distance(c) for c in cells])
    positions, numbers, grain_of, true = [], [], [], []
    images, _ = _seed_images(seeds, box)
    central = 13 * len(grains)  # _seed_images lists the unshifted seeds 14th of the 27 shifts
    for k, (g, cell) in enumerate(zip(grains, cells)):
        # filled around the grain's own seed, unwrapped, so that the lattice runs on unbroken across the box's faces
        # (filling the box itself would leave a fault where a turned lattice meets its own periodic image)
        points = seeds[k] + _fill(cell, random_rotation(rng), -box / 2, box / 2)
        nearest = ((points[:, None, :] - images[None, :, :]) ** 2).sum(-1).argmin(axis=1)
        keep = points[nearest == central + k]
        positions.append(keep)
        numbers.append(np.full(len(keep), cell.numbers[0]))
        grain_of.append(np.full(len(keep), k))
        true.append(np.full(len(keep), LATTICES[g[1]], dtype=object))
    positions = np.concatenate(positions)
    grain_of = np.concatenate(grain_of)
    numbers = np.concatenate(numbers)
    true = np.concatenate(true)
    keep = ~_crowded(positions, grain_of, box, remove_closer * nn.min())
    positions, numbers, grain_of, true = positions[keep], numbers[keep], grain_of[keep], true[keep]
    if displacement:
        positions = positions + rng.normal(0.0, 1.0, positions.shape) * (displacement * nn[grain_of])[:, None]
    atoms = Atoms(numbers=numbers, positions=np.mod(positions, box), cell=np.diag(box), pbc=True)
    _, distance = boundary_distance(atoms.positions, seeds, box)
    atoms.set_array("true_class", true.astype(str))
    atoms.set_array("grain", grain_of.astype(int))
    atoms.set_array("boundary_distance", distance)
    atoms.info["grain_seeds"] = seeds
    return atoms


def _md(atoms: Atoms, temperature_k: float, steps: int, seed: int, timestep_fs: float = 5.0,
        friction: float = 0.02, fixed=None) -> None:
    from ase import units
    from ase.constraints import FixAtoms
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta

    rng = np.random.default_rng(seed)
    if fixed is not None:
        atoms.set_constraint(FixAtoms(mask=fixed))
    thermalize_momenta(atoms, temperature_k, rng=rng)
    if fixed is not None:
        atoms.set_momenta(np.where(fixed[:, None], 0.0, atoms.get_momenta()))
    # fixcm=False: the centre of mass is not held (ASE deprecates holding it this way; with atoms held fixed it
    # would not apply anyway), and the thermostat's drift of it over a few ps is far below a bond length
    Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_k, friction=friction / units.fs,
             fixcm=False, rng=rng).run(steps)
    atoms.set_constraint()


def rms_displacement(atoms: Atoms, mask=None) -> float:
    """Root-mean-square displacement per coordinate (Å) of the atoms (those of ``mask``) from their ``lattice_site``
    (minimum image)."""
    d = atoms.positions - atoms.arrays["lattice_site"]
    d -= np.round(d @ np.linalg.inv(atoms.cell[:])) @ atoms.cell[:]
    return float(np.sqrt(np.mean(d[slice(None) if mask is None else np.asarray(mask, bool)] ** 2)))


def thermal_snapshot(element: str, fraction_of_melting: float, repeat: int = 5, steps: int = 400,
                     seed: int = 0) -> Atoms:
    """A Langevin molecular-dynamics snapshot of an fcc metal at ``fraction_of_melting`` × its melting point,
    with ASE's EMT potential (a periodic cubic crystal of 4 repeat³ atoms, turned at random afterwards is up to the
    caller). Every atom's true class is fcc; ``lattice_site`` keeps each atom's starting (ideal) position."""
    from ase.calculators.emt import EMT

    if element not in MELTING_POINT_K:
        raise ValueError(f"EMT describes {sorted(MELTING_POINT_K)}; got {element!r}")
    atoms = bulk(element, "fcc", cubic=True).repeat((repeat,) * 3)
    sites = atoms.positions.copy()
    atoms.calc = EMT()
    _md(atoms, fraction_of_melting * MELTING_POINT_K[element], steps, seed)
    atoms.calc = None
    atoms.set_array("lattice_site", sites)
    atoms.set_array("true_class", np.full(len(atoms), "fcc"))
    atoms.set_array("grain", np.zeros(len(atoms), int))
    atoms.set_array("boundary_distance", np.full(len(atoms), np.inf))
    atoms.info["temperature_K"] = fraction_of_melting * MELTING_POINT_K[element]
    return atoms


def liquid_snapshot(element: str, fraction_of_melting: float = 2.0, repeat: int = 5, melt_factor: float = 4.0,
                    melt_steps: int = 300, steps: int = 300, seed: int = 0) -> Atoms:
    """A liquid metal at ``fraction_of_melting`` x its melting point (ASE's EMT, Langevin dynamics, 4 repeat³ atoms
    in the periodic box of the fcc crystal it melted from): the crystal is melted at ``melt_factor`` x Tm for
    ``melt_steps`` steps, then held at ``fraction_of_melting`` x Tm for ``steps``. Melting first: a crystal heated
    at constant volume stays a superheated solid for far longer than a simulation lasts, even at 2 Tm (in the
    box of the solid its melting point is raised). ``lattice_site`` keeps each atom's starting site, so
    :func:`rms_displacement` tells whether it melted (about a nearest-neighbour distance or more); true class
    "liquid" for every atom."""
    from ase.calculators.emt import EMT

    if element not in MELTING_POINT_K:
        raise ValueError(f"EMT describes {sorted(MELTING_POINT_K)}; got {element!r}")
    if melt_factor < fraction_of_melting:
        raise ValueError(f"melt_factor ({melt_factor}) below fraction_of_melting ({fraction_of_melting}): the melt "
                         "must be at least as hot as the liquid it leaves")
    atoms = bulk(element, "fcc", cubic=True).repeat((repeat,) * 3)
    sites = atoms.positions.copy()
    atoms.calc = EMT()
    tm = MELTING_POINT_K[element]
    _md(atoms, melt_factor * tm, melt_steps, seed)
    _md(atoms, fraction_of_melting * tm, steps, seed + 1)
    atoms.calc = None
    atoms.set_array("lattice_site", sites)
    atoms.set_array("true_class", np.full(len(atoms), "liquid"))
    atoms.set_array("grain", np.zeros(len(atoms), int))
    atoms.set_array("boundary_distance", np.full(len(atoms), np.inf))
    atoms.info["temperature_K"] = fraction_of_melting * tm
    return atoms


def coexistence_snapshot(element: str, repeat=(14, 6, 6), melt_k_factor: float = 3.0, melt_steps: int = 400,
                         hold_fraction: float = 0.9, hold_steps: int = 60, seed: int = 0) -> Atoms:
    """Solid and liquid side by side: the half of an fcc crystal with x above the box's middle is melted at
    ``melt_k_factor`` × Tm while the other half is held fixed, then the whole box runs ``hold_steps`` steps at
    ``hold_fraction`` × Tm (too short to recrystallise). The box keeps its volume, so the solid half squeezes the hot
    half and raises its melting point, so it is heated well past it (notebook 08 prints how far the atoms of each
    half moved from their sites, the check that the melted half is a liquid). True class: "liquid" in the melted half, fcc in the other; ``boundary_distance``:
    Å to the nearer of the two interface planes (x = 0 and x = L/2); ``lattice_site``: each atom's starting site."""
    from ase.calculators.emt import EMT

    if element not in MELTING_POINT_K:
        raise ValueError(f"EMT describes {sorted(MELTING_POINT_K)}; got {element!r}")
    atoms = bulk(element, "fcc", cubic=True).repeat(tuple(repeat))
    sites = atoms.positions.copy()
    atoms.calc = EMT()
    length = atoms.cell[0, 0]
    liquid = atoms.positions[:, 0] >= length / 2
    tm = MELTING_POINT_K[element]
    _md(atoms, melt_k_factor * tm, melt_steps, seed, fixed=~liquid)
    _md(atoms, hold_fraction * tm, hold_steps, seed + 1)
    atoms.calc = None
    atoms.set_array("lattice_site", sites)
    atoms.set_array("true_class", np.where(liquid, "liquid", "fcc"))
    atoms.set_array("grain", liquid.astype(int))
    x = np.mod(atoms.positions[:, 0], length)
    atoms.set_array("boundary_distance", np.minimum.reduce([x, np.abs(x - length / 2), length - x]))
    atoms.info["temperature_K"] = hold_fraction * tm
    return atoms
