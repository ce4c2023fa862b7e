"""Physical facts of the diffraction fingerprint, and the fast path against the slow reference."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from helpers import defects, structures
from helpers.fingerprint import (
    diffraction_fingerprint, diffraction_fingerprints, pixel_offsets, ring_mask, detector_q,
)
from helpers.neighbours import nn_scale
from reference_fingerprint import reference_fingerprint


def corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_shape_dtype_and_range(crystals):
    fp = diffraction_fingerprint(crystals["fcc"])
    assert fp.shape == (64, 64, 3) and fp.dtype == np.float32
    assert fp.min() == 0.0 and fp.max() == pytest.approx(1.0)


def test_zero_outside_the_ring_and_signal_inside(crystals):
    o = pixel_offsets()
    d = np.hypot(o[None, :], o[:, None])
    for fp in (diffraction_fingerprint(a) for a in crystals.values()):
        assert np.all(fp[(d <= 10) | (d >= 30)] == 0)
        inside = fp[(d > 10) & (d < 30)]
        assert np.count_nonzero(inside > 0.01) > 20  # peaks, not an empty ring
    assert ring_mask().sum() == np.count_nonzero((d > 10) & (d < 30))


def test_edge_of_detector_is_about_16_inverse_angstrom():
    q, _ = detector_q(np.array([31.5]), np.array([0.5]))
    assert 15.5 < np.linalg.norm(q) < 16.5


@pytest.mark.parametrize("case", ["fcc", "bcc", "diam", "vacancies", "displaced", "two_species", "hcp_small"])
def test_fast_path_equals_complex128_reference(case, crystals):
    rng = np.random.default_rng(5)
    if case in crystals:
        atoms = crystals[case]
    elif case == "vacancies":
        atoms = defects.vacancies(crystals["fcc"], 0.25, rng)
    elif case == "displaced":
        atoms = defects.displacements(crystals["bcc"], 0.04, rng)
    elif case == "two_species":
        atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(3)
        atoms.positions += rng.normal(0, 0.05, atoms.positions.shape)
    else:
        atoms = bulk("Mg", "hcp", a=3.21, c=5.21).repeat((3, 3, 2))  # 36 atoms, not rotated
    fast = diffraction_fingerprint(atoms)
    slow = reference_fingerprint(atoms, nn_distance=nn_scale(atoms))  # the scale has tests of its own
    assert np.max(np.abs(fast - slow)) < 1e-4
    if case in crystals:  # a perfect cubic crystal: the scale is the plain nearest-neighbour distance
        assert np.max(np.abs(fast - reference_fingerprint(atoms))) < 1e-4


def test_classes_differ_clearly(crystals):
    fps = {k: diffraction_fingerprint(a) for k, a in crystals.items()}
    for a, b in (("fcc", "bcc"), ("fcc", "diam"), ("bcc", "diam")):
        assert corr(fps[a], fps[b]) < 0.6, (a, b)


def test_vacancies_keep_the_peaks_of_the_parent(crystals):
    rng = np.random.default_rng(11)
    for atoms in crystals.values():
        parent = diffraction_fingerprint(atoms)
        vacant = diffraction_fingerprint(defects.vacancies(atoms, 0.25, rng))
        assert corr(parent, vacant) > 0.9
        # the brightest peaks of the parent are still among the bright pixels with vacancies
        top = np.argsort(parent.ravel())[-20:]
        assert np.median(vacant.ravel()[top]) > 0.3


def test_invariant_to_scale_translation_and_atom_order(crystals):
    atoms = crystals["diam"]
    fp = diffraction_fingerprint(atoms)
    bigger = atoms.copy()
    bigger.set_cell(atoms.cell[:] * 1.7, scale_atoms=True)
    moved = atoms.copy()
    moved.positions += [3.3, -1.2, 7.0]
    shuffled = atoms[np.random.default_rng(0).permutation(len(atoms))]
    for other in (bigger, moved, shuffled):
        assert np.max(np.abs(diffraction_fingerprint(other) - fp)) < 1e-4


def test_depends_on_orientation(crystals):
    atoms = crystals["fcc"]
    turned = structures.rotate(atoms, structures.random_rotation(np.random.default_rng(3)))
    assert np.max(np.abs(diffraction_fingerprint(turned) - diffraction_fingerprint(atoms))) > 0.1


def test_batch_equals_single_whatever_the_workers(crystals):
    atoms = list(crystals.values()) * 12  # 36 structures: several chunks
    single = np.stack([diffraction_fingerprint(a) for a in atoms])
    for n_jobs in (1, 2):
        batch = diffraction_fingerprints(atoms, n_jobs=n_jobs, progress=False, chunk_size=8)
        assert np.array_equal(batch, single)


def bad_structures():
    good = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    empty = Atoms(cell=np.eye(3) * 4, pbc=True)
    flat = good.copy()
    flat.cell[2] = 0.0
    nan = good.copy()
    nan.positions[3, 1] = np.nan
    inf = good.copy()
    inf.positions[0, 0] = np.inf
    unknown = good.copy()
    unknown.numbers[5] = 0  # the placeholder element X
    single = Atoms("Cu", cell=np.eye(3) * 3, pbc=True)
    duplicate = good + good[:1]
    return {"empty": (empty, "empty"), "no cell": (flat, "cell is missing or degenerate"), "nan": (nan, "NaN"), "inf": (inf, "NaN or infinite"),
            "unknown element": (unknown, "unknown element"), "single atom": (single, "single atom"),
            "duplicate atoms": (duplicate, "same position")}


@pytest.mark.parametrize("name", list(bad_structures()))
def test_bad_input_raises_a_clear_value_error(name):
    atoms, words = bad_structures()[name]
    with pytest.raises(ValueError, match=words):
        diffraction_fingerprint(atoms)


def test_a_finite_cluster_is_fingerprinted_as_given_and_scaled_by_its_own_distances():
    """A block of atoms with pbc=False gives the same sum over the same atoms as with pbc=True; only the scale
    comes from the atoms' own neighbours (surface atoms have fewer), which must agree with the crystal's."""
    block = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(4)
    cluster = block.copy()
    cluster.pbc = False
    cluster.cell[:] = 0.0  # no cell at all, as a cluster read from an xyz file
    assert nn_scale(cluster) == pytest.approx(3.615 / 2**0.5, rel=1e-9)
    a, b = diffraction_fingerprint(block), diffraction_fingerprint(cluster)
    assert np.max(np.abs(a - b)) < 1e-4
    moved = cluster.copy()
    moved.positions += np.random.default_rng(0).normal(0, 0.02 * 3.615 / 2**0.5, moved.positions.shape)
    assert nn_scale(moved) == pytest.approx(3.615 / 2**0.5, rel=0.005)


def test_batch_error_names_the_structure(crystals):
    atoms = [crystals["fcc"], Atoms(cell=np.eye(3), pbc=True)]
    with pytest.raises(ValueError, match="structure 1: empty"):
        diffraction_fingerprints(atoms, n_jobs=1, progress=False)


def test_not_an_atoms_object():
    with pytest.raises(TypeError, match="ase.io.read"):
        diffraction_fingerprint(np.zeros((4, 3)))


CIF = """data_{name}
_cell_length_a {a}
_cell_length_b {a}
_cell_length_c {a}
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
_symmetry_Int_Tables_number 225
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
{sites}
"""


@pytest.mark.parametrize("sites, message", [
    ("Cu1 Cu 0 0 0 0.5\nAu1 Au 0 0 0 0.5", r"site 0 at fractional position \(0, 0, 0\) holds Cu 0.5 \+ Au 0.5"),
    ("Cu1 Cu 0 0 0 0.8", r"site 0 at fractional position \(0, 0, 0\) holds Cu 0.8"),
])
def test_a_cif_with_partial_occupancy_is_refused_naming_the_site(tmp_path, sites, message):
    """ase.io.read reads a 50/50 Cu/Au site as Au4 and a Cu site at 0.8 as Cu4; without this check both were
    fingerprinted (and classified) as ordered crystals without a word."""
    import ase.io

    from helpers.fingerprint import check_structure

    path = tmp_path / "partial.cif"
    path.write_text(CIF.format(name="partial", a=3.75, sites=sites))
    atoms = ase.io.read(path)
    for given in (atoms, atoms.repeat(2)):
        with pytest.raises(ValueError, match="partial occupancy: " + message):
            check_structure(given)
    full = tmp_path / "full.cif"
    full.write_text(CIF.format(name="full", a=3.615, sites="Cu1 Cu 0 0 0 1.0"))
    check_structure(ase.io.read(full))  # a fully occupied site passes
    flagged = bulk("Cu", "fcc", a=3.615, cubic=True)
    flagged.set_array("occupancy", np.array([1.0, 1.0, 0.9, 1.0]))
    with pytest.raises(ValueError, match=r"atom 2 \(Cu\) has occupancy 0.9"):
        check_structure(flagged)
