"""Prototypes, labels, preparation and defects."""
import numpy as np
import pytest

from helpers import defects, structures
from helpers.neighbours import nearest_neighbour_distances
from helpers.structures import CLASSES, PROTOTYPES, Parent


def mid_shape(proto):
    return tuple((p.name, 0.5 * sum(p.intervals[0])) for p in proto.lattice_parameters)


@pytest.mark.parametrize("name", list(PROTOTYPES))
def test_every_prototype_has_its_space_group(name):
    proto = PROTOTYPES[name]
    parent = Parent(proto.class_name, name, "Cu", 2.5, mid_shape(proto))
    assert parent.space_group == proto.space_group
    assert parent.space_group in structures.CLASS_SPACE_GROUPS[proto.class_name]
    cell = parent.conventional_cell()
    assert np.mean(nearest_neighbour_distances(cell.positions, cell.cell[:])) == pytest.approx(2.5)


@pytest.mark.parametrize("prototype, shape, raised_to", [
    ("In", (("c_over_a", 1.0),), 229),              # bct with c/a = 1 is bcc
    ("In", (("c_over_a", 2 ** 0.5),), 225),         # ... and with c/a = sqrt 2, fcc
    ("alpha-Hg", (("alpha_deg", 60.0),), 225),      # rhombohedral 60 degrees is fcc
])
def test_special_values_raise_the_symmetry_and_are_caught(prototype, shape, raised_to):
    parent = Parent(PROTOTYPES[prototype].class_name, prototype, "In", 3.0, shape)
    assert parent.space_group == raised_to != PROTOTYPES[prototype].space_group


def test_every_class_has_prototypes_and_many_elements():
    for c in CLASSES:
        assert structures.CLASS_PROTOTYPES[c]
    assert len(structures.CLASS_PROTOTYPES["hex_rh"]) == 6
    assert len(structures.ELEMENTS) >= 40


def test_reference_nn_distances_are_realistic():
    assert structures.reference_nn_distance("Cu") == pytest.approx(2.55, abs=0.01)
    assert structures.reference_nn_distance("W") == pytest.approx(2.74, abs=0.01)
    assert structures.reference_nn_distance("Si") == pytest.approx(2.35, abs=0.01)
    assert structures.reference_nn_distance("Cs") == pytest.approx(5.24, abs=0.02)  # bcc a = 6.05
    for e in structures.ELEMENTS:
        assert 1.3 < structures.reference_nn_distance(e) < 5.3, e


def test_random_rotation_is_a_proper_rotation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        r = structures.random_rotation(rng)
        assert np.allclose(r @ r.T, np.eye(3)) and np.linalg.det(r) == pytest.approx(1.0)


def test_rotate_turns_crystals_and_clusters_without_a_cell_alike():
    from ase.build import bulk

    rotation = structures.random_rotation(np.random.default_rng(3))
    crystal = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(3)
    cluster = structures.ball_cut(crystal, 50)
    assert not cluster.pbc.any() and cluster.cell.rank == 0
    for atoms in (crystal, cluster):
        turned = structures.rotate(atoms, rotation)
        assert np.allclose(turned.positions, atoms.positions @ rotation.T)
        assert np.allclose(turned.cell[:], atoms.cell[:] @ rotation.T)
        assert np.array_equal(turned.pbc, atoms.pbc)
    assert np.allclose(structures.rotate(crystal, rotation).get_scaled_positions(wrap=False),
                       crystal.get_scaled_positions(wrap=False))


def test_a_cut_through_a_shell_keeps_the_same_atoms_whatever_the_last_bits_of_the_floats():
    """Another CPU's vector units change the last bits of the turned positions; the cluster must not change with
    them (07's clusters, and the shipped model trained on them, depend on it)."""
    from ase.build import bulk

    crystal = structures.rotate(bulk("Cu", "fcc", a=3.615, cubic=True).repeat(5),
                                structures.random_rotation(np.random.default_rng(8)))
    d = np.linalg.norm(crystal.positions - crystal.positions.mean(axis=0), axis=1)
    assert np.sum(np.isclose(d, np.sort(d)[255], atol=1e-9)) > 1  # the 256-atom cut falls inside a shell
    kept = structures.ball_cut(crystal, 256).positions
    for seed in range(5):
        jittered = crystal.copy()
        jittered.positions += np.random.default_rng(seed).uniform(-1e-12, 1e-12, jittered.positions.shape)
        assert np.allclose(structures.ball_cut(jittered, 256).positions, kept, atol=1e-9)

def test_a_cut_through_a_shell_keeps_the_cluster_centred():
    """The atoms kept from a shell are spread over it, not all on one side: catches a tie-break by atom index (the
    block's first cells), which leaves the cluster's centre 0.18 Å off on average here, against 0.06 Å."""
    from ase.build import bulk

    crystal = structures.rotate(bulk("Cu", "fcc", a=3.615, cubic=True).repeat(5),
                                structures.random_rotation(np.random.default_rng(8)))
    centre = crystal.positions.mean(axis=0)
    offsets = [np.linalg.norm(structures.ball_cut(crystal, n).positions.mean(axis=0) - centre)
               for n in range(150, 400, 10)]
    assert np.mean(offsets) < 0.1


def test_prepared_supercells_are_about_256_atoms_and_keep_nn():
    rng = np.random.default_rng(4)
    for c in CLASSES:
        for parent in structures.draw_parents(c, 4, "train", 0, 0.2, rng):
            atoms = structures.prepared_parent(parent, rng)
            assert 180 <= len(atoms) <= 340 and len(atoms) >= 32
            nn = np.mean(nearest_neighbour_distances(atoms.positions, atoms.cell[:]))
            assert nn == pytest.approx(parent.nn_distance, rel=1e-6)


def test_prepare_keeps_the_random_orientation():
    """orientation='random' (beyond the paper): the rotation survives the standardisation; the supercell's
    vectors are those of the rotated conventional cell, not brought back to the standard orientation."""
    rng = np.random.default_rng(8)
    parent = structures.draw_parents("fcc", 1, "train", 0, 0.2, rng)[0]
    rotation = structures.random_rotation(rng)
    atoms = structures.prepared_parent(parent, rng, rotation=rotation, orientation="random")
    conventional = parent.conventional_cell()
    expected = structures.rotate(conventional, rotation).cell[:]
    # the supercell vectors are integer multiples of +-permutations of the rotated conventional vectors
    for v in atoms.cell[:]:
        coeffs = np.linalg.solve(expected.T, v)
        assert np.allclose(coeffs, np.round(coeffs), atol=1e-6)
    assert not np.allclose(np.abs(atoms.cell[:] / np.linalg.norm(atoms.cell[:], axis=1)[:, None]), np.eye(3), atol=1e-3)


def test_standard_orientation_undoes_the_rotation():
    """orientation='standard' (the paper's protocol, the default): two random rotations of the same parent give
    the same supercell, along spglib's standard axes; 'random' keeps them apart."""
    rng = np.random.default_rng(9)
    parent = structures.draw_parents("bct_141", 1, "train", 0, 0.2, rng)[0]
    a, b = (structures.prepared_parent(parent, np.random.default_rng(s)) for s in (1, 2))
    assert np.allclose(a.cell[:], b.cell[:], atol=1e-6)
    assert np.allclose(a.positions, b.positions, atol=1e-6)  # the same atoms too: spglib's origin, made canonical
    assert np.allclose(a.cell[:] - np.diag(np.diag(a.cell[:])), 0.0, atol=1e-6)  # tetragonal: along x, y, z
    c, d = (structures.prepared_parent(parent, np.random.default_rng(s), orientation="random") for s in (1, 2))
    assert not np.allclose(c.cell[:], d.cell[:], atol=1e-3)
    with pytest.raises(ValueError, match="orientation"):
        structures.prepared_parent(parent, rng, orientation="sideways")


def test_supercell_repeats():
    cubic = np.eye(3) * 3.6
    assert structures.supercell_repeats(cubic, 4, 256) == (4, 4, 4)
    assert np.prod(structures.supercell_repeats(cubic, 1, 32)) >= 32


def test_groups_split_train_and_test():
    rng = np.random.default_rng(1)
    train = structures.draw_parents("hex_rh", 200, "train", 7, 0.2, rng)
    test = structures.draw_parents("hex_rh", 50, "test", 7, 0.2, rng)
    assert not {p.group for p in train} & {p.group for p in test}
    assert all(structures.group_side(p.group, 7, 0.2) == "test" for p in test)


def test_vacancies_remove_int_n_fraction():
    atoms = structures.example_structure("fcc")
    rng = np.random.default_rng(0)
    for f in (0.01, 0.25, 0.5):
        assert len(defects.vacancies(atoms, f, rng)) == len(atoms) - int(len(atoms) * f)
    with pytest.raises(ValueError, match="fraction"):
        defects.vacancies(atoms, 1.0, rng)


def test_displacements_have_the_requested_sigma():
    atoms = structures.example_structure("bcc")
    nn = structures.mean_nn(atoms)
    moved = defects.displacements(atoms, 0.02, np.random.default_rng(0))
    delta = moved.positions - atoms.positions
    assert np.std(delta) == pytest.approx(0.02 * nn, rel=0.1)
    assert abs(np.mean(delta)) < 0.005 * nn
    with pytest.raises(ValueError, match="sigma"):
        defects.displacements(atoms, -0.1, np.random.default_rng(0))
