"""The crystal behind a block of atoms: its lattice, its ideal cell, its standard orientation, and the block of
about 256 atoms that the network was trained on, cut from it (``classify``).

The fingerprint sums over the finite block of atoms it is given, so the block's size and shape change it even
when the crystal and its orientation are the same (Cu as 8 x 8 x 8 or as 4 x 4 x 4 conventional cells: not the
same picture), and the paper's network was trained on crystals in spglib's standard orientation. A structure a
user hands in (a supercell of any shape, turned any way, with vacancies or displaced atoms) is therefore
brought to the training data's form:

1. **The crystal's translations.** A translation t of the crystal takes every site onto a site of the same
   element (a partner of another element does not count: Na and Cl of rock salt are not one lattice), so an atom
   has a partner at x + t unless that site is vacant, one at x - t unless that other site is vacant (two independent
   chances: the share of atoms with both partners is the product of the two shares), and one at x + 2t as
   often as at x + t. A vector between two different sites of the basis (the two atoms of hcp, diamond or
   graphite) relates only some of the sites: forwards and backwards are far from independent (never both, or
   always both), or twice the vector finds no partner. Vectors between atoms are tried as candidates, shortest
   first, each refined to the mean vector of its matched pairs (random displacements average out). A candidate
   is a translation when at least 30 % of the atoms have a partner (within 4.5 times the spread of the
   neighbour vectors, 0.05 to 0.25 nearest-neighbour distances),
   the share with both partners lies within 20 % of the product, twice the vector finds at least 85 % as many,
   and its share reaches 85 % of the best share among such translations (or 95 %: a crystal without
   vacancies). The block's own cell vectors are translations whatever the defects. The first three independent
   translations are a primitive basis (in three dimensions the shortest independent lattice vectors always
   are a basis), checked against the block's cell vectors and refined on them: the cell vectors are exact
   translations, whole multiples of the basis, and the basis that makes them so exactly (within the search's
   precision of the one found) replaces the noisy one; a cell many lattice vectors long would otherwise multiply
   its error past any fixed tolerance. A defect pattern that repeats (a defective cell
   that was itself repeated) does not confuse this: its repeat vectors are exact translations, but longer than
   the crystal's.
2. **The ideal cell.** Every atom, folded into that primitive cell, lands near one site of the basis; the mean
   position of each site's atoms is the site (displacements average out; missing atoms only lower the count).
3. **The standard orientation.** spglib standardises that ideal cell, exactly as notebook 01 standardises a
   pristine parent: the conventional cell in spglib's standard orientation, its rotation from the input's axes
   and its origin. This is the crystal's own symmetry, not that of the block's lattice, so a block that happens
   to be near-cubic, or repeated unevenly ((2, 1, 1) turns a hexagonal lattice orthorhombic), changes nothing.
4. **The re-cut.** The conventional cell is repeated as in training (about 256 atoms) and every site of that
   block is filled with the input's atom at that site (periodic images of the input included), carrying its
   displacement, turned into the standard frame; a site whose atom is missing stays empty. Defects are kept as
   they were, only the block and the orientation change.

A structure of fewer than ``MIN_ATOMS_FOR_SEARCH`` atoms (a small cell given by a user is its crystal's cell, or a
few of them) is taken as its own ideal cell when its atoms sit on ideal sites (the spread of its neighbour vectors
below ``IDEAL_SPREAD``); displaced, it is searched repeated to at least that many atoms, and taken as it is only
where no lattice is found that way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import spglib
from ase import Atoms

from .neighbours import kd_tree, periodic_images, scale_and_spread

MIN_ATOMS_FOR_SEARCH = 32
MATCH = (0.05, 0.25)   # a partner lies within 4.5 x the spread of the neighbour vectors, in these bounds (in
                       # nearest-neighbour distances): 0.05 for a perfect crystal, about 0.13 at sigma = 2 %
SPREADS = 4.5
MIN_SHARE = 0.3        # a translation finds a partner for at least this share of the atoms,
INDEPENDENT = (0.8, 1.2)  # and partners at x + t and x - t as often together as if independent (ratio range)
EXACT = 0.95           # a translation of the whole structure (no vacancy on the way) finds this share or more
KEEP = 0.85            # other translations find at least this share of the best such share
RECUT_MATCH = 0.45     # the re-cut takes the atom within this many nearest-neighbour distances of each site
MAX_LENGTH = 6.0       # candidate translations up to this many nearest-neighbour distances (graphite's c: 4.8)
SYMPREC = 0.05         # spglib's tolerance on the ideal cell, in nearest-neighbour distances
IDEAL_SPREAD = 1e-6    # a small cell whose neighbour vectors spread less than this (in NN distances) is ideal
N_REFERENCE = 12       # atoms whose neighbours give the candidate translations
N_TEST = 500           # atoms that test each candidate (all of them in a smaller structure)


class AlignmentError(ValueError):
    """The structure's crystal lattice could not be found (an amorphous or badly distorted structure)."""


@dataclass
class Block:
    """A structure re-cut to the block the network was trained on, and what was found on the way."""

    atoms: Atoms
    space_group: int
    international: str
    repeats: tuple
    n_basis: int                  # atoms in the crystal's primitive cell
    how: str                      # "ideal cell of the input" or "translations found among the atoms (...)"


def _candidate_translations(cart: np.ndarray, images: np.ndarray, tree, max_length: float,
                            cart_numbers: np.ndarray, image_numbers: np.ndarray) -> np.ndarray:
    """Vectors from a few atoms to every atom of the same element (images included) up to ``max_length``, shortest
    first: a translation of the crystal maps every atom onto one of its own element."""
    picks = np.unique(np.linspace(0, len(cart) - 1, min(N_REFERENCE, len(cart))).astype(int))
    near = [np.asarray(tree.query_ball_point(cart[i], max_length), dtype=int) for i in picks]
    vectors = np.concatenate([images[j[image_numbers[j] == cart_numbers[i]]] - cart[i] for i, j in zip(picks, near)])
    lengths = np.linalg.norm(vectors, axis=1)
    order = np.argsort(lengths, kind="stable")
    return vectors[order][lengths[order] > 1e-9]


def _partners(t: np.ndarray, test: np.ndarray, images: np.ndarray, tree, radius: float, species: tuple) -> tuple:
    """Which test atoms have an atom of their own element within ``radius`` of x + t, and the mean vector of those
    pairs. ``species``: (elements of the test atoms, elements of the images)."""
    dist, j = tree.query(test + t, distance_upper_bound=radius)
    hit = np.isfinite(dist)
    hit[hit] = species[1][j[hit]] == species[0][hit]
    return hit, ((images[j[hit]] - test[hit]).mean(axis=0) if hit.any() else t)


def _test_candidate(t: np.ndarray, test: np.ndarray, images: np.ndarray, tree, radius: float,
                    species: tuple) -> tuple:
    """(share of atoms with a partner at x + t, whether t passes the tests of a translation, refined vector).
    The candidate t is one noisy pair; its matched pairs within twice the radius give the refined vector first."""
    _, mean = _partners(t, test, images, tree, 2 * radius, species)
    forward, mean = _partners(mean, test, images, tree, radius, species)
    share = float(forward.mean())
    if share < MIN_SHARE:
        return share, False, mean
    backward, _ = _partners(-mean, test, images, tree, radius, species)
    expected = share * backward.mean()
    both = float((forward & backward).mean())
    twice = float(_partners(2 * mean, test, images, tree, radius, species)[0].mean())
    passes = INDEPENDENT[0] * expected <= both <= INDEPENDENT[1] * expected and twice >= KEEP * share
    return share, bool(passes), mean


def _independent(vectors: list, v: np.ndarray, distance: float) -> bool:
    """Whether v leaves the span of ``vectors`` by more than ``distance`` (noisy copies of a vector, or of a sum
    of two, are not new)."""
    if not vectors:
        return bool(np.linalg.norm(v) > distance)
    q, _ = np.linalg.qr(np.array(vectors).T)
    return bool(np.linalg.norm(v - q @ (q.T @ v)) > distance)


def _greedy_basis(records: list, distance: float) -> list:
    """The shortest three independent accepted vectors among the records (share, accepted, vector), which come
    shortest first."""
    basis = []
    for _, accepted, v in records:
        if accepted and _independent(basis, v, distance):
            basis.append(v)
            if len(basis) == 3:
                break
    return basis


class _SeenVectors:
    """The candidate vectors tried so far, hashed on a grid of cubes one radius wide: whether a new candidate lies
    within ``radius`` of one of them looks at 27 cubes, not at every vector tried (a liquid tries thousands)."""

    def __init__(self, radius: float):
        self.radius, self.cubes = radius, {}

    def near(self, t: np.ndarray) -> bool:
        key = np.floor(t / self.radius).astype(int)
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dz in (-1, 0, 1):
                    for v in self.cubes.get((key[0] + dx, key[1] + dy, key[2] + dz), ()):
                        if np.linalg.norm(v - t) < self.radius:
                            return True
        return False

    def add(self, t: np.ndarray) -> None:
        self.cubes.setdefault(tuple(np.floor(t / self.radius).astype(int)), []).append(np.array(t, dtype=float))


class _BasisSearch:
    """The records (share, passes, vector) of the candidates tried, shortest first, and the basis they give: the
    shortest three independent accepted vectors (:func:`_greedy_basis`). A record passing at a share below EXACT
    (a translation across vacancies) is accepted when its share is at least KEEP x the best such share, so the
    basis is rebuilt from every record only when that best share changes; otherwise only the new record can join
    it. The same basis as rebuilding it after every record, at a cost linear in the number of candidates."""

    def __init__(self, radius: float):
        self.radius, self.records, self.best, self.basis = radius, [], 1.0, []
        self.has_partial = False

    def _accepted(self, record: tuple) -> bool:
        share, passes, _ = record
        return bool(passes and (share >= EXACT or share >= KEEP * self.best))

    def add(self, record: tuple) -> None:
        self.records.append(record)
        share, passes, v = record
        if passes and share < EXACT and (not self.has_partial or share > self.best):
            self.best, self.has_partial = share, True  # the share of sites occupied, where some are vacant
            self.basis = _greedy_basis([(r[0], self._accepted(r), r[2]) for r in self.records], self.radius)
        elif len(self.basis) < 3 and self._accepted(record) and _independent(self.basis, v, self.radius):
            self.basis.append(v)


def match_radius(scale: float, spread: float) -> float:
    """How far from x + t a partner may lie (Angstrom): SPREADS x the spread of the neighbour vectors, within
    MATCH x the nearest-neighbour distance."""
    return float(np.clip(SPREADS * spread, MATCH[0] * scale, MATCH[1] * scale))


def primitive_lattice(atoms: Atoms, scale: float, spread: float = 0.0) -> np.ndarray:
    """Rows b1, b2, b3: a primitive basis of the crystal's translations, found among the atoms (step 1 of the
    module docstring); ``spread`` as :func:`helpers.neighbours.scale_and_spread` gives it. Raises AlignmentError
    when no consistent lattice is found."""
    positions, cell = atoms.positions, np.asarray(atoms.cell[:], dtype=np.float64)
    radius = match_radius(scale, spread)
    cart, images, owner = periodic_images(positions, cell, 2 * MAX_LENGTH * scale + 4 * radius, owners=True)
    tree = kd_tree(images)
    numbers = np.asarray(atoms.numbers)
    picked = np.unique(np.linspace(0, len(cart) - 1, min(N_TEST, len(cart))).astype(int))
    test, species = cart[picked], (numbers[picked], numbers[owner])
    inverse = np.linalg.inv(cell)
    seen, search = _SeenVectors(radius), _BasisSearch(radius)
    for t in _candidate_translations(cart, images, tree, MAX_LENGTH * scale, numbers, species[1]):
        if len(search.basis) == 3 and np.linalg.norm(t) > np.linalg.norm(search.basis[2]) + radius:
            break
        if seen.near(t):
            continue
        f = t @ inverse
        if np.all(np.abs(f - np.round(f)) < 1e-6):
            record = (1.0, True, t)  # a cell vector of the block: a translation whatever the defects
        else:
            record = _test_candidate(t, test, images, tree, radius, species)
        seen.add(t)
        seen.add(record[2])
        search.add(record)
    basis = search.basis
    basis = _consistent(atoms, np.array(basis), scale, radius) if len(basis) == 3 else None
    if basis is None:
        raise AlignmentError("no lattice of translations found among the atoms explains them (an amorphous or too "
                             "disordered structure)")
    if np.linalg.det(basis) < 0:
        basis[2] *= -1
    return basis


def _consistent(atoms: Atoms, basis: np.ndarray, scale: float, radius: float):
    """The lattice refined so that it generates the structure's own cell vectors exactly, if it can be the crystal's:
    the cell vectors are whole multiples N of the basis to within the search's precision (each refined basis vector
    within ``radius`` of the one found), and it does not imply more atoms than sites; otherwise None.

    The cell vectors of a periodic structure are translations of its crystal, known exactly; the vectors found
    among noisy atoms are not. A supercell of 28 cells along a side multiplies their error by 28: a test of the
    multiples to a fixed 0.05 rejected large defective supercells, whose lattice the refinement recovers."""
    cell = np.asarray(atoms.cell[:], dtype=np.float64)
    if abs(np.linalg.det(basis)) < 1e-6 * scale ** 3:
        return None
    multiples = np.round(cell @ np.linalg.inv(basis))
    if abs(np.linalg.det(multiples)) < 0.5:
        return None
    refined = np.linalg.solve(multiples, cell)
    if np.max(np.linalg.norm(refined - basis, axis=1)) > radius:
        return None
    n_sites = len(ideal_cell(atoms, refined, scale)) * abs(np.linalg.det(cell) / np.linalg.det(refined))
    return refined if len(atoms) <= 1.05 * n_sites else None


def ideal_cell(atoms: Atoms, basis: np.ndarray, scale: float) -> Atoms:
    """The crystal's primitive cell on ``basis``: one atom per site, at the mean position of the atoms on that
    site, with the element most of them have (step 2)."""
    frac = atoms.positions @ np.linalg.inv(basis)
    unassigned = np.arange(len(atoms))
    sites, numbers, counts = [], [], []
    while len(unassigned):
        d = frac[unassigned] - frac[unassigned[0]]
        d -= np.round(d)
        members = np.linalg.norm(d @ basis, axis=1) < RECUT_MATCH * scale
        centre = frac[unassigned[0]] + d[members].mean(axis=0)  # then again around the members' mean
        d = frac[unassigned] - centre
        d -= np.round(d)
        members = np.linalg.norm(d @ basis, axis=1) < RECUT_MATCH * scale
        sites.append(centre + d[members].mean(axis=0))
        values, n = np.unique(atoms.numbers[unassigned[members]], return_counts=True)
        numbers.append(int(values[np.argmax(n)]))
        counts.append(int(members.sum()))
        unassigned = unassigned[~members]
    counts = np.array(counts)
    real = counts >= 0.2 * counts.max()  # a stray atom (an interstitial) is not a site of the crystal
    return Atoms(numbers=np.array(numbers)[real], cell=basis, scaled_positions=np.array(sites)[real] % 1.0, pbc=True)


def canonical_sites(positions: np.ndarray, types: np.ndarray) -> tuple:
    """The conventional cell's sites with the origin on one of its atoms, the same one whatever origin spglib
    chose: of the choices (one per atom) the one whose sorted (type, fractional coordinates) come first.
    spglib's standard setting still leaves a choice of origin (hcp's atoms sit on Wyckoff 2c or on 2d, half a
    cell apart along c), and a finite block of the crystal depends on it. Returns (sites, origin) with
    sites = positions - origin, wrapped into [0, 1)."""
    positions = np.asarray(positions, dtype=np.float64)
    best = None
    for j in range(len(positions)):
        shifted = positions - positions[j]
        shifted -= np.floor(shifted + 1e-9)  # a coordinate within 1e-9 of 1 is 0
        shifted[np.abs(shifted) < 1e-9] = 0.0
        key = sorted(zip(np.asarray(types).tolist(), *np.round(shifted, 6).T.tolist()))
        if best is None or key < best[0]:
            best = (key, shifted, positions[j])
    return best[1], best[2]


def supercell_repeats(cell: np.ndarray, n_atoms: int, target: int = 256, minimum: int = 32) -> tuple:
    """Repetitions (n1, n2, n3) for about ``target`` atoms (never fewer than ``minimum``), keeping
    the supercell's extents along the three directions as equal as possible."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    spacing = volume / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    nmax = int(np.ceil(2.0 * (target / n_atoms) ** (1 / 3) * spacing.max() / spacing.min())) + 1
    n = np.arange(1, min(max(nmax, 2), 64) + 1)
    n1, n2, n3 = np.meshgrid(n, n, n, indexing="ij")
    total = n_atoms * n1 * n2 * n3
    extents = np.stack([n1 * spacing[0], n2 * spacing[1], n3 * spacing[2]])
    cost = np.abs(np.log(total / target)) + 0.25 * np.log(extents.max(0) / extents.min(0))
    cost = np.where(total >= minimum, cost, np.inf)
    i = np.unravel_index(np.argmin(cost), cost.shape)
    return int(n1[i]), int(n2[i]), int(n3[i])


def _found_ideal_cell(atoms: Atoms, scale: float, spread: float) -> tuple:
    """(the crystal's ideal primitive cell, how it was found): from the translations found among the atoms, or the
    input itself where it is a perfect small cell."""
    if len(atoms) >= MIN_ATOMS_FOR_SEARCH:
        basis = primitive_lattice(atoms, scale, spread)
        return ideal_cell(atoms, basis, scale), "translations found among the atoms"
    if spread > IDEAL_SPREAD * scale:
        # A small displaced cell is searched repeated k x k x k to at least MIN_ATOMS_FOR_SEARCH atoms (its own
        # translations are then among those tested): taken as its own ideal cell, it had no symmetry.
        k = int(np.ceil((MIN_ATOMS_FOR_SEARCH / len(atoms)) ** (1.0 / 3.0) - 1e-9))
        repeated = atoms.repeat(k)
        try:
            basis = primitive_lattice(repeated, scale, spread)
            return ideal_cell(repeated, basis, scale), f"translations found among the atoms (repeated {k}x{k}x{k})"
        except AlignmentError:
            pass  # no lattice found that way: the input as its own ideal cell
    return atoms, "ideal cell of the input"  # a perfect small cell (e.g. a conventional cell) as it is


def _symmetry(ideal: Atoms, tolerance: float, keep_orientation: bool) -> tuple:
    """(the ideal cell as spglib read it, spglib's symmetry dataset of it at ``tolerance`` in Angstrom);
    AlignmentError where it finds none, or only the periodic box itself (P1 with several atoms in the cell)."""
    if keep_orientation:
        # In its own orientation the conventional cell is one of several equivalent ones (a hexagonal a and b
        # turned by 60 degrees), and spglib's pick can flip with the last bits of its input, which differ between
        # CPUs' vector units: the same seed then gave 6 of 15,727 of 07's blocks another shape on a CPU held to
        # AVX2. Rounded to 1e-6 Angstrom (far below symprec) the input, and so the pick, is the same.
        ideal = Atoms(numbers=ideal.numbers, cell=np.round(ideal.cell[:], 6),
                      scaled_positions=np.round(ideal.get_scaled_positions(), 7) % 1.0, pbc=True)
    try:
        data = spglib.get_symmetry_dataset((ideal.cell[:], ideal.get_scaled_positions(), ideal.numbers),
                                           symprec=tolerance)
    except spglib.error.SpglibError as exc:
        raise AlignmentError(f"spglib found no symmetry in the crystal's ideal cell ({exc})") from exc
    if data is None:
        raise AlignmentError("spglib found no symmetry in the crystal's ideal cell")
    if data.number == 1 and len(ideal) > 1:
        # An elemental crystal of any class has symmetry beyond its translations; P1 with several atoms in the cell
        # is the periodic box itself repeating, with nothing crystalline inside it (a liquid or amorphous snapshot)
        raise AlignmentError(f"no symmetry beyond the periodic box: the only lattice found is the {len(ideal)}-atom "
                             "cell itself, with space group P1 (an amorphous or too disordered structure)")
    return ideal, data


def standard_block(atoms: Atoms, target_atoms: int = 256, keep_orientation: bool = False,
                   symprec: float = SYMPREC) -> Block:
    """The structure re-cut to about ``target_atoms`` atoms of its crystal's standard conventional cell, in
    spglib's standard orientation (or, with ``keep_orientation``, in the input's own), defects kept (module
    docstring). ``symprec``: spglib's tolerance on the ideal cell, in nearest-neighbour distances. Raises
    AlignmentError when the crystal's lattice or symmetry cannot be found."""
    scale, spread = scale_and_spread(atoms)
    cell = np.asarray(atoms.cell[:], dtype=np.float64)
    ideal, how = _found_ideal_cell(atoms, scale, spread)
    ideal, data = _symmetry(ideal, symprec * scale, keep_orientation)
    in_frame = np.linalg.inv(data.transformation_matrix).T @ np.asarray(ideal.cell[:])  # conventional rows, input axes
    if keep_orientation:
        rotation, lattice = np.eye(3), in_frame
    else:
        rotation, lattice = np.asarray(data.std_rotation_matrix), np.asarray(data.std_lattice)
    cell_sites, origin = canonical_sites(data.std_positions, data.std_types)
    reps = supercell_repeats(lattice, len(cell_sites), target_atoms)
    grid = np.stack(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij"), -1).reshape(-1, 3)
    sites = (cell_sites[None, :, :] + grid[:, None, :]).reshape(-1, 3)
    in_input = (sites + origin - data.origin_shift) @ in_frame  # where each block site lies in the input
    radius = RECUT_MATCH * scale
    wrapped = in_input - np.floor(in_input @ np.linalg.inv(cell)) @ cell
    _, images, owner = periodic_images(atoms.positions, cell, 2 * radius, owners=True)
    dist, j = kd_tree(images).query(wrapped, distance_upper_bound=radius)
    hit = np.isfinite(dist)
    if not hit.any():
        raise AlignmentError("no atom of the input lies on a site of its own crystal")
    positions = sites[hit] @ lattice + (images[j[hit]] - wrapped[hit]) @ rotation.T
    block = Atoms(numbers=atoms.numbers[owner[j[hit]]], positions=positions,
                  cell=lattice * np.array(reps)[:, None], pbc=True)
    return Block(block, int(data.number), str(data.international), tuple(int(r) for r in reps), len(ideal), how)
