"""Elemental crystal structures of the seven classes of docs/science.md, and their preparation.

A *parent* is one (element, prototype, lattice parameters) choice. Its pristine conventional cell is
built with ASE in the standard setting, scaled to a realistic nearest-neighbour distance, and
labelled with spglib; a parent whose space group is not the prototype's (special parameter values
raise the symmetry: bct with c/a = 1 is bcc) is dropped. Preparation then follows docs/science.md:
random rotation, standard conventional cell (spglib; in its standard orientation for the paper's protocol,
keeping the rotation for the any-orientation one), supercell of about 256 atoms.

Held-out sets: parents are grouped by (element, prototype, lattice-parameter bin) and every group
belongs to the training or to the test side, decided by a hash of the group and the seed, so no
test parent shares a group with any training parent.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# spglib writes a C-level warning ("Primitive lattice cleaning is incomplete") for many defective cells, where
# failing to find the symmetry is the expected answer; SPGLIB_WARNING=OFF (spglib's own switch) silences it,
# here and in the worker processes, unless the user has set it.
os.environ.setdefault("SPGLIB_WARNING", "OFF")
import spglib  # noqa: E402
from ase import Atoms
from ase.data import atomic_numbers, covalent_radii, reference_states
from ase.spacegroup import crystal

from .lattice import standard_block, supercell_repeats  # noqa: F401 (supercell_repeats: imported from here too)
from .neighbours import mean_nearest_neighbour_distance as mean_nn

try:  # spglib >= 2.7: raise exceptions instead of returning None (the default from spglib 3)
    spglib.error.OLD_ERROR_HANDLING = False
except AttributeError:  # pragma: no cover - older spglib
    pass

CLASSES = ("bct_139", "bct_141", "hex_rh", "sc", "fcc", "diam", "bcc")
CLASS_SPACE_GROUPS = {
    "bct_139": (139,), "bct_141": (141,), "hex_rh": (166, 194), "sc": (221,), "fcc": (225,),
    "diam": (227,), "bcc": (229,),
}

# Elements with X-ray form factors and a well-defined solid: metals, semimetals and C.
ELEMENTS = (
    "Li", "Be", "C", "Na", "Mg", "Al", "Si", "K", "Ca", "Sc", "Ti", "V", "Cr", "Fe", "Co", "Ni", "Cu",
    "Zn", "Ga", "Ge", "As", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn",
    "Sb", "Cs", "Ba", "La", "Ce", "Sm", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb",
    "Bi", "Po", "Th",
)

NN_SCALE_RANGE = (0.94, 1.06)  # lattice parameter varied around the element's own NN distance
NN_SCALE_BIN = 0.03


@dataclass(frozen=True)
class LatticeParameter:
    """A lattice parameter of a prototype beyond the scale: its allowed intervals and group bin."""

    name: str
    intervals: tuple  # ((lo, hi), ...): union of allowed intervals
    bin_width: float

    def sample(self, rng: np.random.Generator) -> float:
        lengths = np.array([hi - lo for lo, hi in self.intervals])
        k = rng.choice(len(self.intervals), p=lengths / lengths.sum())
        lo, hi = self.intervals[k]
        return float(rng.uniform(lo, hi))

    def bin(self, value: float) -> int:
        return int(math.floor(value / self.bin_width + 1e-9))


@dataclass(frozen=True)
class Prototype:
    name: str
    class_name: str
    space_group: int
    description: str
    lattice_parameters: tuple = field(default_factory=tuple)  # LatticeParameter, ...

    def conventional_cell(self, element: str, **lattice_parameters) -> Atoms:
        """Pristine conventional cell in the standard setting, lattice parameter a = 1 (unscaled)."""
        return _BUILDERS[self.name](element, **lattice_parameters)


def _hexagonal(element, basis, c_over_a, sg):
    return crystal([element] * len(basis), basis, spacegroup=sg, cellpar=[1, 1, c_over_a, 90, 90, 120])


def _cubic(element, sg):
    return crystal(element, [(0, 0, 0)], spacegroup=sg, cellpar=[1, 1, 1, 90, 90, 90])


def _rhombohedral_hg(element, alpha_deg):
    # rhombohedral a_r = 1 and angle alpha, written in the hexagonal setting of R-3m
    alpha = math.radians(alpha_deg)
    a_h = 2.0 * math.sin(alpha / 2.0)
    c_h = math.sqrt(3.0 * (1.0 + 2.0 * math.cos(alpha)))
    return crystal(element, [(0, 0, 0)], spacegroup=166, cellpar=[a_h, a_h, c_h, 90, 90, 120])


_BUILDERS = {
    "In": lambda e, c_over_a: crystal(e, [(0, 0, 0)], spacegroup=139, cellpar=[1, 1, c_over_a, 90, 90, 90]),
    "beta-Sn": lambda e, c_over_a: crystal(e, [(0, 0, 0)], spacegroup=141, cellpar=[1, 1, c_over_a, 90, 90, 90]),
    "alpha-As": lambda e, c_over_a, u: _hexagonal(e, [(0, 0, u)], c_over_a, 166),
    "alpha-Hg": lambda e, alpha_deg: _rhombohedral_hg(e, alpha_deg),
    "alpha-Sm": lambda e, c_over_a, z: _hexagonal(e, [(0, 0, 0), (0, 0, z)], c_over_a, 166),
    "hcp": lambda e, c_over_a: _hexagonal(e, [(1 / 3, 2 / 3, 1 / 4)], c_over_a, 194),
    "dhcp": lambda e, c_over_a: _hexagonal(e, [(0, 0, 0), (1 / 3, 2 / 3, 1 / 4)], c_over_a, 194),
    "graphite": lambda e, c_over_a: _hexagonal(e, [(0, 0, 1 / 4), (1 / 3, 2 / 3, 1 / 4)], c_over_a, 194),
    "alpha-Po": lambda e: _cubic(e, 221),
    "Cu": lambda e: _cubic(e, 225),
    "diamond": lambda e: _cubic(e, 227),
    "W": lambda e: _cubic(e, 229),
}

PROTOTYPES = {p.name: p for p in (
    # c/a kept away from 1 (bcc) and sqrt(2) (fcc)
    Prototype("In", "bct_139", 139, "In type (A6), I4/mmm 2a",
              (LatticeParameter("c_over_a", ((0.80, 0.93), (1.07, 1.34), (1.49, 1.80)), 0.05),)),
    Prototype("beta-Sn", "bct_141", 141, "beta-Sn (A5), I4_1/amd 4a",
              (LatticeParameter("c_over_a", ((0.50, 0.60),), 0.025),)),
    Prototype("alpha-As", "hex_rh", 166, "alpha-As (A7), R-3m 6c",
              (LatticeParameter("c_over_a", ((2.60, 2.85),), 0.0625), LatticeParameter("u", ((0.220, 0.230),), 0.0025))),
    # alpha = 60 deg would be fcc, 90 deg sc
    Prototype("alpha-Hg", "hex_rh", 166, "alpha-Hg (A10), R-3m 3a",
              (LatticeParameter("alpha_deg", ((65.0, 80.0),), 3.75),)),
    Prototype("alpha-Sm", "hex_rh", 166, "alpha-Sm (C19), R-3m 3a + 6c",
              (LatticeParameter("c_over_a", ((7.0, 7.4),), 0.1), LatticeParameter("z", ((0.219, 0.225),), 0.0015))),
    Prototype("hcp", "hex_rh", 194, "hcp (A3), P6_3/mmc 2c",
              (LatticeParameter("c_over_a", ((1.50, 1.70),), 0.05),)),
    Prototype("dhcp", "hex_rh", 194, "double hcp (La), P6_3/mmc 2a + 2c",
              (LatticeParameter("c_over_a", ((3.10, 3.30),), 0.05),)),
    Prototype("graphite", "hex_rh", 194, "graphite (A9), P6_3/mmc 2b + 2c",
              (LatticeParameter("c_over_a", ((2.60, 2.80),), 0.05),)),
    Prototype("alpha-Po", "sc", 221, "alpha-Po (A_h), Pm-3m 1a"),
    Prototype("Cu", "fcc", 225, "Cu (A1), Fm-3m 4a"),
    Prototype("diamond", "diam", 227, "diamond (A4), Fd-3m 8a"),
    Prototype("W", "bcc", 229, "W (A2), Im-3m 2a"),
)}
CLASS_PROTOTYPES = {c: tuple(p.name for p in PROTOTYPES.values() if p.class_name == c) for c in CLASSES}


@lru_cache(maxsize=None)
def reference_nn_distance(element: str) -> float:
    """The element's nearest-neighbour distance in its own solid (ASE reference state), else twice its
    covalent radius (Angstrom)."""
    if element not in atomic_numbers:
        raise ValueError(f"unknown element {element!r}")
    z = atomic_numbers[element]
    state = reference_states[z] or {}
    a = state.get("a")
    symmetry = state.get("symmetry")
    factors = {"fcc": 1 / math.sqrt(2), "bcc": math.sqrt(3) / 2, "diamond": math.sqrt(3) / 4, "sc": 1.0}
    if a and symmetry in factors:
        return a * factors[symmetry]
    if a and symmetry == "hcp":
        c = a * state.get("c/a", math.sqrt(8 / 3))
        return min(a, math.sqrt(a * a / 3 + c * c / 4))
    return 2.0 * float(covalent_radii[z])


def space_group(atoms: Atoms, symprec: float = 1e-3) -> int:
    """International space-group number from spglib (0 if spglib finds none)."""
    try:
        data = spglib.get_symmetry_dataset((atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers),
                                           symprec=symprec)
    except spglib.error.SpglibError:
        return 0
    return 0 if data is None else int(data.number)


# ---- parents ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parent:
    """One (element, prototype, lattice parameters) choice."""

    class_name: str
    prototype: str
    element: str
    nn_distance: float  # Angstrom
    lattice_parameters: tuple  # ((name, value), ...): c/a, angles, internal coordinates

    @property
    def group(self) -> str:
        """(element, prototype, lattice-parameter bin): the unit of the train/test split."""
        proto = PROTOTYPES[self.prototype]
        scale = self.nn_distance / reference_nn_distance(self.element)
        bins = [f"nn{int(math.floor((scale - NN_SCALE_RANGE[0]) / NN_SCALE_BIN + 1e-9))}"]
        bins += [f"{p.name}{p.bin(v)}" for p, (_, v) in zip(proto.lattice_parameters, self.lattice_parameters)]
        return "|".join([self.element, self.prototype] + bins)

    @property
    def lattice_text(self) -> str:
        return ",".join(f"{k}={v:.4f}" for k, v in self.lattice_parameters)

    @property
    def space_group(self) -> int:
        """spglib's space group of the pristine cell, scaled to mean NN distance 1 Angstrom
        (symprec 1e-3, i.e. relative to the NN distance)."""
        return _unit_cell(self.prototype, self.lattice_parameters)[0]

    def conventional_cell(self) -> Atoms:
        """Pristine conventional cell (ASE, standard setting), scaled to this parent's NN distance."""
        _, lattice, frac, n = _unit_cell(self.prototype, self.lattice_parameters)
        return Atoms(numbers=[atomic_numbers[self.element]] * n, cell=lattice * self.nn_distance,
                     scaled_positions=frac, pbc=True)


@lru_cache(maxsize=8192)
def _unit_cell(prototype: str, lattice_parameters: tuple):
    """Space group and conventional cell of a prototype with these lattice parameters at mean NN
    distance 1 Angstrom. Neither depends on the element or the scale, so both are computed once
    per (prototype, lattice parameters) (spglib takes up to 10 ms on a cubic cell)."""
    atoms = PROTOTYPES[prototype].conventional_cell("Cu", **dict(lattice_parameters))
    atoms.set_cell(atoms.cell[:] / mean_nn(atoms), scale_atoms=True)
    return space_group(atoms, symprec=1e-3), np.asarray(atoms.cell[:]), atoms.get_scaled_positions(), len(atoms)


def group_side(group: str, seed: int, test_fraction: float) -> str:
    """'test' or 'train' for a group: a stable hash of (seed, group), independent of draw order."""
    digest = hashlib.blake2b(f"{seed}:{group}".encode(), digest_size=8).digest()
    return "test" if int.from_bytes(digest, "big") / 2.0**64 < test_fraction else "train"


def draw_parent(class_name: str, rng: np.random.Generator, elements=ELEMENTS) -> Parent:
    prototype = PROTOTYPES[CLASS_PROTOTYPES[class_name][rng.integers(len(CLASS_PROTOTYPES[class_name]))]]
    element = elements[rng.integers(len(elements))]
    scale = rng.uniform(*NN_SCALE_RANGE)
    values = tuple((p.name, round(p.sample(rng), 6)) for p in prototype.lattice_parameters)
    return Parent(class_name, prototype.name, element, round(reference_nn_distance(element) * scale, 6), values)


def draw_parents(class_name: str, n: int, side: str, seed: int, test_fraction: float,
                 rng: np.random.Generator, max_tries: int = 200) -> list:
    """n parents of a class whose groups all belong to ``side`` ('train' or 'test')."""
    out = []
    while len(out) < n:
        for _ in range(max_tries):
            parent = draw_parent(class_name, rng)
            if group_side(parent.group, seed, test_fraction) == side:
                out.append(parent)
                break
        else:
            raise RuntimeError(f"no {side} group found for {class_name} in {max_tries} draws; "
                               f"choose a test_fraction between 0.05 and 0.5")
    return out


# ---- preparation -----------------------------------------------------------------------------
ORIENTATIONS = ("standard", "random")


def check_orientation(orientation) -> str:
    """``orientation`` if it is one of ``ORIENTATIONS``; otherwise a ValueError that lists them."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
    return orientation


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Rotation matrix drawn uniformly from SO(3) (``scipy.spatial.transform.Rotation.random``)."""
    from scipy.spatial.transform import Rotation

    return Rotation.random(rng=rng).as_matrix()


def rotate(atoms: Atoms, rotation: np.ndarray) -> Atoms:
    """The structure (atoms, and cell where it has one) rotated rigidly by a 3 x 3 rotation matrix. The positions
    are turned themselves, not through the cell, so a cluster without a cell turns too."""
    rotation = np.asarray(rotation, dtype=np.float64)
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell[:]) @ rotation.T, scale_atoms=False)
    out.positions = np.asarray(atoms.positions) @ rotation.T
    return out


def prepare(atoms: Atoms, rng: np.random.Generator, target_atoms: int = 256, symprec: float = 1e-3,
            rotation: np.ndarray | None = None, orientation: str = "standard") -> Atoms:
    """Structure preparation (docs/science.md): random rotation, standard conventional cell, supercell of about
    ``target_atoms`` atoms.

    ``orientation="standard"`` (the paper's protocol) lets spglib turn the conventional cell into its standard
    orientation, which undoes the rotation, so that every crystal of a prototype is seen along the same axes;
    ``"random"`` keeps the random orientation through the standardisation. Both go through
    :func:`helpers.lattice.standard_block`, the same function that ``classify`` uses on a user's structure, so a
    pristine crystal gives the same block whichever way it comes in. ``symprec`` is spglib's tolerance relative to
    the nearest-neighbour distance.
    """
    check_orientation(orientation)
    rotation = random_rotation(rng) if rotation is None else rotation
    return standard_block(rotate(atoms, rotation), target_atoms, keep_orientation=orientation == "random",
                          symprec=symprec).atoms


def ball_cut(atoms: Atoms, n_atoms: int = 256) -> Atoms:
    """A finite cluster: the ``n_atoms`` atoms nearest the centre of mass of ``atoms`` (all of them when there are
    no more), without a cell and not periodic, in their original order.

    Atoms of one shell lie at the same distance, so the cut often falls inside a shell. The distances are rounded
    to 1e-6 Å before they are ranked, and the atoms of a shell are ranked among themselves by a fixed random
    permutation: unrounded, the last bits of the floats (which differ between CPUs' vector units) would pick which
    atoms of the shell are kept, and the same seed would give other clusters on another CPU; ranked by index, the
    atoms kept would all lie on the side of the block where its first cells are, and the cluster would be lopsided."""
    positions = np.asarray(atoms.positions, dtype=np.float64)
    d = np.round(np.linalg.norm(positions - positions.mean(axis=0), axis=1), 6)
    shuffle = np.random.default_rng(0).permutation(len(positions))
    keep = np.sort(np.lexsort((shuffle, d))[:n_atoms])
    return Atoms(numbers=np.asarray(atoms.numbers)[keep], positions=positions[keep], pbc=False)


def prepared_cluster(parent: Parent, rng: np.random.Generator, target_atoms: int = 256) -> Atoms:
    """A randomly turned cluster of ``target_atoms`` atoms cut from a parent's crystal (:func:`ball_cut` of a block
    of four times as many atoms, prepared as ``prepare(orientation="random")`` prepares one): the form a
    nanoparticle or a cut-out of a simulation comes in, without a lattice to align by."""
    return ball_cut(prepare(parent.conventional_cell(), rng, target_atoms=4 * target_atoms, orientation="random"),
                    target_atoms)


def example_structure(class_name: str, element: str | None = None, rng: np.random.Generator | None = None,
                      rotation: np.ndarray | None = None, target_atoms: int = 256) -> Atoms:
    """A typical prepared supercell of a class (first prototype of the class, middle of its ranges, the
    element's own nearest-neighbour distance) in the standard orientation, then turned by ``rotation`` if one is
    given (e.g. for figures and the explorer widget, to show what turning a crystal does to its fingerprint)."""
    prototype = PROTOTYPES[CLASS_PROTOTYPES[class_name][0]]
    element = element or {"bct_139": "In", "bct_141": "Sn", "hex_rh": "As", "sc": "Po", "fcc": "Cu",
                           "diam": "Si", "bcc": "W"}[class_name]
    values = tuple((p.name, 0.5 * (p.intervals[0][0] + p.intervals[-1][1]) if len(p.intervals) == 1
                    else 0.5 * sum(p.intervals[-1])) for p in prototype.lattice_parameters)
    parent = Parent(class_name, prototype.name, element, reference_nn_distance(element), values)
    rng = np.random.default_rng(0) if rng is None else rng
    atoms = prepared_parent(parent, rng, target_atoms=target_atoms)
    return atoms if rotation is None else rotate(atoms, rotation)


def prepared_parent(parent: Parent, rng: np.random.Generator, target_atoms: int = 256,
                    rotation: np.ndarray | None = None, orientation: str = "standard") -> Atoms:
    """``prepare`` applied to a parent's pristine conventional cell (rotation drawn from ``rng``)."""
    return prepare(parent.conventional_cell(), rng, target_atoms=target_atoms, rotation=rotation,
                   orientation=orientation)
