"""helpers.lattice: the crystal's lattice found among defective atoms, and the training-sized block cut from it."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from helpers import defects, structures
from helpers.fingerprint import diffraction_fingerprint
from helpers.lattice import AlignmentError, canonical_sites, primitive_lattice, standard_block
from helpers.neighbours import scale_and_spread


def turned(atoms, seed):
    return structures.rotate(atoms, structures.random_rotation(np.random.default_rng(seed)))


def same_lattice(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two bases generate the same lattice (each an integer combination of the other, volumes equal)."""
    c = a @ np.linalg.inv(b)
    return np.allclose(c, np.round(c), atol=0.02) and np.isclose(abs(np.linalg.det(a)), abs(np.linalg.det(b)), rtol=0.01)


@pytest.mark.parametrize("defect", ["none", "vacancies", "displacements"])
def test_primitive_lattice_of_a_defective_hcp_supercell(defect):
    """hcp has two atoms per primitive cell: the vector between them finds partners for half the atoms and must not
    be taken for a translation; the true primitive cell is found through vacancies and displacements alike."""
    small = bulk("Mg", "hcp", a=3.21, c=5.21)
    big = small.repeat((6, 6, 4))
    rng = np.random.default_rng(0)
    big = {"none": big, "vacancies": defects.vacancies(big, 0.25, rng),
           "displacements": defects.displacements(big, 0.02, rng)}[defect]
    rotation = structures.random_rotation(np.random.default_rng(1))
    scale, spread = scale_and_spread(structures.rotate(big, rotation))
    basis = primitive_lattice(structures.rotate(big, rotation), scale, spread)
    assert same_lattice(basis, small.cell[:] @ rotation.T)


def test_a_repeated_defect_pattern_does_not_hide_the_crystal():
    """A defective cell repeated 2 x 1 x 1: its repeat vector is an exact translation of the whole structure, yet
    the crystal's own (with vacancies on the way) are shorter and are the ones found."""
    rng = np.random.default_rng(2)
    cell = defects.vacancies(bulk("Cu", "fcc", a=3.6, cubic=True).repeat(4), 0.25, rng)
    scale, spread = scale_and_spread(cell.repeat((2, 1, 1)))
    basis = primitive_lattice(cell.repeat((2, 1, 1)), scale, spread)
    assert same_lattice(basis, bulk("Cu", "fcc", a=3.6).cell[:])


def test_pseudo_translation_of_arsenic_is_not_a_translation():
    """alpha-As is a distorted simple cubic crystal: the vector between its two atoms almost takes the crystal onto
    itself, within a third of the nearest-neighbour distance. A perfect crystal is held to a tight match."""
    rng = np.random.default_rng(3)
    proto = structures.PROTOTYPES["alpha-As"]
    while True:
        parent = structures.draw_parent(proto.class_name, rng)
        if parent.prototype == "alpha-As" and parent.space_group == 166:
            break
    block = structures.prepared_parent(parent, rng)
    recut = standard_block(turned(block, 4))
    assert recut.space_group == 166 and recut.n_basis == 2 and len(recut.atoms) == len(block)


def test_canonical_origin_does_not_depend_on_spglibs_choice():
    """hcp on Wyckoff 2c or 2d (half a cell apart along c): the same canonical sites."""
    types = np.array([12, 12])
    c, _ = canonical_sites(np.array([[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]), types)
    d, _ = canonical_sites(np.array([[1 / 3, 2 / 3, 0.75], [2 / 3, 1 / 3, 0.25]]), types)
    assert np.allclose(sorted(map(tuple, c)), sorted(map(tuple, d)))
    assert np.allclose(c.min(axis=0), 0.0)  # an atom at the origin


def test_pristine_block_equals_the_generators_whatever_the_input():
    """notebook 01's preparation of a pristine parent and the re-cut of any supercell of it: the same block."""
    rng = np.random.default_rng(5)
    for class_name in structures.CLASSES:
        parent = structures.draw_parents(class_name, 1, "train", 0, 0.2, rng)[0]
        if parent.space_group != structures.PROTOTYPES[parent.prototype].space_group:
            continue
        generated = structures.prepared_parent(parent, rng)
        for given in (turned(parent.conventional_cell(), 6), turned(generated.repeat((2, 1, 1)), 7)):
            block = standard_block(given).atoms
            assert len(block) == len(generated), class_name
            assert np.max(np.abs(diffraction_fingerprint(block) - diffraction_fingerprint(generated))) < 1e-4, class_name


def test_amorphous_input_raises_alignment_error():
    rng = np.random.default_rng(0)
    atoms = Atoms("Cu64", positions=rng.random((64, 3)) * 9.0, cell=np.eye(3) * 9.0, pbc=True)
    with pytest.raises(AlignmentError):
        standard_block(atoms)


@pytest.mark.parametrize("name, cell", [
    ("bcc W, 8 atoms (2 x 2 x 2 primitive)", bulk("W", "bcc", a=3.165).repeat(2)),
    ("bcc W, 8 atoms (2 x 2 x 1 conventional)", bulk("W", "bcc", a=3.165, cubic=True).repeat((2, 2, 1))),
    ("bcc W, 27 atoms", bulk("W", "bcc", a=3.165).repeat(3)),
    ("fcc Cu, 27 atoms", bulk("Cu", "fcc", a=3.61).repeat(3)),
])
def test_a_small_displaced_cell_gets_its_parents_space_group(name, cell):
    """Below 32 atoms the input was taken as its own ideal cell, so a small MD cell with sigma = 2 % came out P1
    (all 20 draws of the 27-atom cells, 11 of 20 of the 8-atom bcc cell); it is now searched repeated."""
    expected = "Im-3m" if "bcc" in name else "Fm-3m"
    for seed in range(10):
        rng = np.random.default_rng(seed)
        atoms = defects.displacements(structures.rotate(cell, structures.random_rotation(rng)), 0.02, rng)
        assert standard_block(atoms).international == expected, (name, seed)


@pytest.mark.parametrize("name, structure, a, group, size", [
    ("NaCl", "rocksalt", 5.64, "Fm-3m", 216), ("CsCl", "cesiumchloride", 4.12, "Pm-3m", 250)])
def test_a_compound_gets_one_block_and_its_space_group_in_every_form(name, structure, a, group, size):
    """The search matched an atom to any atom: NaCl's supercells came out Pm-3m with a 1-atom cell (Na and Cl
    taken as one lattice) and CsCl's Im-3m, while their 2-atom cells came out right; a translation must now map
    every atom onto one of its own element."""
    from helpers.classify import prepare_for_classification

    primitive, cubic = bulk(name, structure, a=a), bulk(name, structure, a=a, cubic=True)
    forms = {"primitive": primitive, "3 x 3 x 3": primitive.repeat(3), "cubic 4 x 4 x 4": cubic.repeat(4),
             "(4, 2, 2)": cubic.repeat((4, 2, 2)),
             "turned": structures.rotate(primitive.repeat(3), structures.random_rotation(np.random.default_rng(1)))}
    for form, atoms in forms.items():
        block = standard_block(atoms)
        assert (block.international, len(block.atoms), block.n_basis) == (group, size, 2), form
        prepared, how = prepare_for_classification(atoms, allow_multiple_elements=True)
        assert len(prepared) == size and how.startswith(f"{group} (") and "2-atom primitive cell" in how, form
        with pytest.raises(ValueError, match="allow_multiple_elements"):
            prepare_for_classification(atoms)  # the networks were trained on elements: refused by default


@pytest.mark.parametrize("element, structure, a", [("Au", "fcc", 4.08), ("W", "bcc", 3.165), ("Cs", "bcc", 6.05),
                                                   ("Sr", "fcc", 6.08), ("V", "bcc", 3.03)])
def test_the_lattice_of_a_large_defective_supercell_is_found(element, structure, a):
    """Turned supercells of 4,000-8,000 atoms with 25 % vacancies and sigma = 2 %: 8 of 18 (these elements, three
    draws each) raised "no lattice ... found", because the cell vectors, 28 lattice vectors long, were tested as
    multiples of the noisy basis to a fixed tolerance. The basis is now refined on the cell vectors."""
    expected = {"fcc": "Fm-3m", "bcc": "Im-3m"}[structure]
    for seed in range(3):
        rng = np.random.default_rng(seed)
        atoms = bulk(element, structure, a=a, cubic=True).repeat(14)
        atoms = defects.vacancies(structures.rotate(atoms, structures.random_rotation(rng)), 0.25, rng)
        block = standard_block(defects.displacements(atoms, 0.02, rng))
        assert block.international == expected and block.n_basis == 1, (element, seed)


def test_the_incremental_basis_search_equals_rebuilding_the_basis_after_every_record():
    """primitive_lattice keeps its basis up to date record by record (a liquid tries thousands of candidates; the
    basis used to be rebuilt from all of them after each). On random records, with vacancy-like shares below EXACT
    that move the acceptance bar, the basis after every record is the one the rule gives from scratch."""
    from helpers import lattice

    def from_scratch(records, radius):
        partial = [share for share, passes, _ in records if passes and share < lattice.EXACT]
        best = max(partial, default=1.0)
        flags = [(s, p and (s >= lattice.EXACT or s >= lattice.KEEP * best), v) for s, p, v in records]
        return lattice._greedy_basis(flags, radius)

    rng = np.random.default_rng(0)
    changed = 0
    for trial in range(40):
        search, records = lattice._BasisSearch(0.3), []
        directions = rng.normal(size=(4, 3))  # few directions: many records are copies of earlier ones
        for _ in range(60):
            v = directions[rng.integers(4)] * rng.uniform(1, 3) + rng.normal(0, 0.05, 3)
            share = float(rng.choice([1.0, 0.97, rng.uniform(0.3, 0.95)]))
            record = (share, bool(rng.random() < 0.7), v)
            records.append(record)
            before = [b.copy() for b in search.basis]
            search.add(record)
            expected = from_scratch(records, 0.3)
            assert len(search.basis) == len(expected)
            assert all(np.array_equal(a, b) for a, b in zip(search.basis, expected))
            changed += len(before) == len(search.basis) and not all(
                np.array_equal(a, b) for a, b in zip(before, search.basis))
    assert changed > 0, "no record ever replaced a basis vector: the test did not reach a rebuild"
