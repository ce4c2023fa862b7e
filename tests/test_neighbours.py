"""The scale of the fingerprint: an estimate of the nearest-neighbour distance that defects do not move."""
import numpy as np
import pytest
from ase.build import bulk

from helpers import defects, structures
from helpers.fingerprint import diffraction_fingerprint
from helpers.neighbours import mean_nearest_neighbour_distance, nearest_neighbour_distances, nn_scale

N_SUPERCELLS = 20  # per prototype: the bias is the mean over these
DISPLACEMENT_BOUNDS = {0.001: 0.003, 0.006: 0.003, 0.01: 0.003, 0.02: 0.003, 0.04: 0.005}
VACANCY_BOUNDS = {0.01: 0.003, 0.1: 0.003, 0.25: 0.003, 0.5: 0.003}


def supercells(prototype: str, n: int, seed: int, orientation: str = "random"):
    """n prepared ~256-atom supercells of one prototype, with their parents."""
    rng = np.random.default_rng(seed)
    proto = structures.PROTOTYPES[prototype]
    out = []
    while len(out) < n:
        parent = structures.draw_parent(proto.class_name, rng)
        if parent.prototype == prototype and parent.space_group == proto.space_group:
            out.append((parent, structures.prepared_parent(parent, rng, orientation=orientation)))
    return out


@pytest.fixture(scope="module")
def biases():
    """Per prototype and defect level: mean over N_SUPERCELLS of scale(defective) / scale(pristine) - 1, for
    the fingerprint's estimate and for the plain mean of per-atom shortest distances."""
    out = {}
    for k, name in enumerate(structures.PROTOTYPES):
        rng = np.random.default_rng([7, k])
        rows = {}
        for parent, atoms in supercells(name, N_SUPERCELLS, seed=k):
            pristine, plain = nn_scale(atoms), mean_nearest_neighbour_distance(atoms)
            for sigma in DISPLACEMENT_BOUNDS:
                moved = defects.displacements(atoms, sigma, rng, nn_distance=parent.nn_distance)
                rows.setdefault(("displacements", sigma), []).append(nn_scale(moved) / pristine - 1)
                if sigma == 0.02:
                    rows.setdefault("plain, sigma 0.02", []).append(mean_nearest_neighbour_distance(moved) / plain - 1)
            for fraction in VACANCY_BOUNDS:
                rows.setdefault(("vacancies", fraction), []).append(
                    nn_scale(defects.vacancies(atoms, fraction, rng)) / pristine - 1)
        out[name] = {key: float(np.mean(v)) for key, v in rows.items()}
    return out


@pytest.mark.parametrize("prototype", list(structures.PROTOTYPES))
def test_displacements_and_vacancies_do_not_move_the_scale(biases, prototype):
    bias = biases[prototype]
    for sigma, bound in DISPLACEMENT_BOUNDS.items():
        assert abs(bias[("displacements", sigma)]) <= bound, (sigma, bias)
    for fraction, bound in VACANCY_BOUNDS.items():
        assert abs(bias[("vacancies", fraction)]) <= bound, (fraction, bias)


def test_the_plain_estimate_would_fail_the_same_bound(biases):
    """Why the estimate changed: the mean of each atom's shortest noisy distance is biased short by several
    per cent at sigma = 2 % on every prototype, ten times the bound above."""
    for name, bias in biases.items():
        assert bias["plain, sigma 0.02"] < -0.015, (name, bias["plain, sigma 0.02"])


@pytest.mark.parametrize("atoms, nn", [
    (bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3), 3.6 / 2 ** 0.5),
    (bulk("W", "bcc", a=3.16, cubic=True).repeat(4), 3.16 * 3 ** 0.5 / 2),
    (bulk("Si", "diamond", a=5.43).repeat(4), 5.43 * 3 ** 0.5 / 4),
    (bulk("Po", "sc", a=3.36).repeat(5), 3.36),
    (bulk("Mg", "hcp", a=3.21, c=3.21 * (8 / 3) ** 0.5).repeat(4), 3.21),  # ideal c/a: one shell of 12
    (bulk("Cu", "fcc", a=3.6), 3.6 / 2 ** 0.5),  # one atom: all neighbours are its own images
])
def test_exact_on_a_perfect_crystal(atoms, nn):
    assert nn_scale(atoms) == pytest.approx(nn, rel=1e-9)
    assert np.allclose(nearest_neighbour_distances(atoms.positions, atoms.cell[:]), nn, rtol=1e-9)


def test_split_first_shell_gives_a_value_just_above_the_shortest_distance():
    """hcp with c/a = 1.55: six neighbours at 0.966 a (the next layers), six at a (in the layer), 3.5 % apart;
    the soft minimum lies between, within a per cent of the shorter."""
    atoms = bulk("Mg", "hcp", a=3.0, c=3.0 * 1.55).repeat(4)
    shortest = 3.0 * (1 / 3 + 1.55 ** 2 / 4) ** 0.5
    assert shortest < nn_scale(atoms) < shortest * 1.01


def test_invariant_to_rotation_translation_and_atom_order():
    atoms = supercells("alpha-As", 1, seed=3)[0][1]
    scale = nn_scale(atoms)
    turned = structures.rotate(atoms, structures.random_rotation(np.random.default_rng(1)))
    moved = atoms.copy()
    moved.positions += [1.3, -7.2, 0.4]
    shuffled = atoms[np.random.default_rng(0).permutation(len(atoms))]
    for other in (turned, moved, shuffled):
        assert nn_scale(other) == pytest.approx(scale, rel=1e-9)


@pytest.mark.parametrize("orientation", ["standard", "random"])
def test_defective_fingerprint_correlates_with_its_pristine_parent(orientation):
    """sigma = 2 % and 4 % displacements, 25 % vacancies: correlation with the pristine parent's fingerprint
    at least 0.98 on average over two supercells of every prototype, and at least 0.95 for each."""
    rng = np.random.default_rng(11)
    results = {}
    for k, name in enumerate(structures.PROTOTYPES):
        for parent, atoms in supercells(name, 2, seed=100 + k, orientation=orientation):
            reference = diffraction_fingerprint(atoms).ravel()
            for key, defective in ((("displacements", 0.02), defects.displacements(atoms, 0.02, rng, parent.nn_distance)),
                                   (("displacements", 0.04), defects.displacements(atoms, 0.04, rng, parent.nn_distance)),
                                   (("vacancies", 0.25), defects.vacancies(atoms, 0.25, rng))):
                r = np.corrcoef(reference, diffraction_fingerprint(defective).ravel())[0, 1]
                results.setdefault(key, []).append((r, name))
    for key, rows in results.items():
        r = np.array([v for v, _ in rows])
        assert r.mean() >= 0.98, (key, r.mean())
        assert r.min() >= 0.95, (key, min(rows))


def test_mean_nearest_neighbour_distance_refuses_what_the_fingerprint_refuses():
    from ase import Atoms

    broken = Atoms("Cu2", positions=[[0, 0, 0], [1, 1, 1]], cell=np.zeros((3, 3)), pbc=True)
    with pytest.raises(ValueError, match="cell is missing or degenerate"):
        mean_nearest_neighbour_distance(broken)
    with pytest.raises(ValueError, match="empty structure"):
        mean_nearest_neighbour_distance(Atoms())


@pytest.mark.parametrize("name, atoms", [
    ("fcc Cu, 25 % vacancies, sigma 2 %", bulk("Cu", "fcc", a=3.61, cubic=True).repeat((10, 9, 8))),
    ("hcp Mg, sigma 4 %", bulk("Mg", "hcp", a=3.21, c=5.21).repeat((14, 12, 10))),
    ("diamond Si, non-orthogonal cell", bulk("Si", "diamond", a=5.43).repeat((12, 11, 10))),
])
def test_large_structures_get_the_scale_the_all_pairs_scan_gives(name, atoms, monkeypatch):
    """Above _SCAN_ATOMS atoms the neighbours come from k-d trees (O(N log N)); the answer must be the scan's.
    A tree search that dropped or doubled neighbours, or mixed up atoms and images, moves the scale or the spread."""
    from helpers import neighbours

    rng = np.random.default_rng(7)
    if "vacancies" in name:
        atoms = defects.vacancies(atoms, 0.25, rng)
    atoms = defects.displacements(atoms, 0.04 if "4 %" in name else 0.02, rng)
    assert len(atoms) > neighbours._SCAN_ATOMS
    tree = neighbours.scale_and_spread(atoms)
    monkeypatch.setattr(neighbours, "_SCAN_ATOMS", 10 ** 9)
    scan = neighbours.scale_and_spread(atoms)
    assert tree == pytest.approx(scan, rel=1e-12)


@pytest.mark.parametrize("lattice, element, periodic", [("fcc", "Cu", False), ("bcc", "W", False), ("fcc", "Cu", True)])
def test_strong_thermal_disorder_does_not_collapse_the_scale(lattice, element, periodic):
    """At sigma = 12 % per coordinate (a metal near melting) the median shortest distance falls to about 0.8 NN; a
    vector cutoff set from it cut off the outer part of the first shell and drew the estimate down by about 5 %
    (fcc windows of 256 atoms). Estimated again from the first estimate, the mean over 6 draws stays within 3 %
    (single 256-atom windows still vary by several per cent), and the second pass is what brings it there."""
    from helpers import neighbours
    from helpers.structures import ball_cut

    cell = bulk(element, lattice, cubic=True)
    nn = nearest_neighbour_distances(cell.positions, cell.cell[:]).min()
    big = cell.repeat(8 if lattice == "fcc" else 9)
    rng = np.random.default_rng(0)
    ratios, first_pass = [], []
    for _ in range(6):
        moved = big.copy()
        moved.positions += rng.normal(0, 0.12 * nn, moved.positions.shape)
        sample = moved if periodic else ball_cut(moved, 256)
        ratios.append(nn_scale(sample) / nn)
        rough, V = neighbours._rough_and_vectors(sample.positions, neighbours._cell_or_none(sample))
        first_pass.append(neighbours._scale_from_vectors(V, rough)[0] / nn)
    assert abs(np.mean(ratios) - 1) < 0.03, ratios
    assert np.mean(first_pass) < np.mean(ratios) - 0.01, (first_pass, ratios)
