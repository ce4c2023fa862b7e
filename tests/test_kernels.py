"""The compiled inner loops of helpers.kernels against plain numpy in float64."""
import numpy as np
import pytest
from scipy.spatial import cKDTree

from helpers import fingerprint, kernels, neighbours


@pytest.mark.parametrize("limit", [1.0, 200.0, 1e4])
def test_sincos_is_within_2e_7_of_float64_over_every_quadrant(limit):
    x = np.concatenate([np.linspace(-limit, limit, 400_001), np.arange(-8, 9) * np.pi / 4]).astype(np.float32)
    s, c = kernels.sincos_array(x)
    exact = x.astype(np.float64)
    assert np.max(np.abs(s - np.sin(exact))) < 2e-7
    assert np.max(np.abs(c - np.cos(exact))) < 2e-7


def direct_sums(qrows: np.ndarray, xyz: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sums[m, r, l] of orbit_sums, in float64 numpy: L = (cos, sin) of phase rows 0 and 1, R = (cos, sin) of row 2."""
    phase = (qrows.astype(np.float64) @ xyz.T.astype(np.float64)).reshape(-1, 3, len(xyz))
    left = np.stack([np.cos(phase[:, 0]), np.sin(phase[:, 0]), np.cos(phase[:, 1]), np.sin(phase[:, 1])], 1)
    right = np.stack([np.cos(phase[:, 2]), np.sin(phase[:, 2])], 1)
    return np.einsum("mrj,mlj->mrl", left * weights[:, None, :], right)


@pytest.mark.parametrize("n_atoms, multi", [(1, False), (37, False), (250, True), (1000, False)])
def test_orbit_sums_equal_the_float64_sums_with_padding_and_per_row_weights(n_atoms, multi):
    rng = np.random.default_rng(n_atoms)
    qrows = fingerprint._orbits()["qrows"]
    n_rows = len(qrows) // 3
    xyz = (rng.normal(size=(n_atoms, 3)) * 3).astype(np.float32)
    weights = (rng.uniform(1, 30, size=(n_rows if multi else 1, n_atoms))).astype(np.float32)
    padded = -(-n_atoms // kernels.LANES) * kernels.LANES
    xyz_t = np.zeros((3, padded), np.float32)
    xyz_t[:, :n_atoms] = xyz.T
    w = np.zeros((len(weights), padded), np.float32)
    w[:, :n_atoms] = weights
    sums = np.empty((n_rows, 4, 2), np.float32)
    kernels.orbit_sums(qrows, xyz_t, w, sums)
    expected = direct_sums(qrows, xyz, np.broadcast_to(weights, (n_rows, n_atoms)))
    scale = np.abs(expected).max()
    assert np.max(np.abs(sums - expected)) < 2e-5 * scale


def test_neighbour_scan_finds_what_a_kd_tree_finds():
    rng = np.random.default_rng(5)
    atoms = rng.uniform(0, 6, size=(60, 3))
    images = np.concatenate([atoms, atoms + [6, 0, 0], atoms - [0, 6, 0], atoms[:5]])  # five atoms doubled
    first, vectors, counts, overflow = kernels.neighbour_scan(atoms, np.ascontiguousarray(images.T), 2.0, 200)
    assert not overflow
    tree = cKDTree(images)
    for i, x in enumerate(atoms):
        found = [j for j in tree.query_ball_point(x, 2.0) if np.linalg.norm(images[j] - x) > 1e-6]
        assert counts[i] == len(found)
        expected = sorted(map(tuple, np.round(images[found] - x, 12)))
        assert sorted(map(tuple, np.round(vectors[i, :counts[i]], 12))) == expected
        if i < 5:
            assert first[i] == 0.0  # another image on top of it
        else:
            assert first[i] == pytest.approx(min(np.linalg.norm(images[found] - x, axis=1)), abs=1e-12)
    most = int(counts.max())
    assert not kernels.neighbour_scan(atoms, np.ascontiguousarray(images.T), 2.0, most)[3]
    _, _, cut, overflow = kernels.neighbour_scan(atoms, np.ascontiguousarray(images.T), 2.0, most - 1)
    assert overflow and cut.max() == most - 1


def test_assign_to_centres_matches_the_nearest_centre_by_brute_force():
    rng = np.random.default_rng(6)
    V, centres = rng.normal(size=(500, 3)), rng.normal(size=(9, 3))
    dist, label, count, sums, squares = kernels.assign_to_centres(V, centres, 0.8)
    d = np.linalg.norm(V[:, None] - centres[None], axis=2)
    np.testing.assert_array_equal(label, d.argmin(axis=1))
    near = d.min(axis=1) < 0.8
    np.testing.assert_allclose(dist[near], d.min(axis=1)[near])
    assert np.all(np.isinf(dist[~near]))
    np.testing.assert_array_equal(count, np.bincount(label[near], minlength=9))
    np.testing.assert_allclose(sums, np.stack([np.bincount(label[near], V[near, k], 9) for k in range(3)], 1))
    np.testing.assert_allclose(squares, np.bincount(label[near], d.min(axis=1)[near] ** 2, 9))


def test_the_scale_does_not_depend_on_the_first_search_being_cut_short():
    """An atom with more neighbours than the first search keeps goes to the careful search, same answer."""
    import ase.build

    atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)
    atoms.rattle(0.05, seed=1)
    full = neighbours.nn_scale(atoms)
    saved = neighbours._MAX_VECTORS
    try:
        neighbours._MAX_VECTORS = 4
        assert neighbours.nn_scale(atoms) == pytest.approx(full, rel=1e-12)
    finally:
        neighbours._MAX_VECTORS = saved
