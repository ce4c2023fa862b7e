"""The local-structure map (helpers.local), its test samples (helpers.snapshots) and its peers (helpers.peers)."""
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from scipy.spatial import cKDTree

from helpers import local, peers, snapshots
from helpers.structures import CLASSES, random_rotation, rotate


def _neighbour_distances(atoms, k=12):
    tree = cKDTree(atoms.positions, boxsize=np.diag(atoms.cell))
    return tree.query(atoms.positions, k=k + 1)[0][:, 1:]


def test_polycrystal_grains_are_perfect_inside_and_cleaned_at_boundaries():
    sample = snapshots.voronoi_polycrystal([("Cu", "fcc")] * 3, 32.0, seed=3)
    nn = snapshots.nn_distance(bulk("Cu", "fcc"))
    d = _neighbour_distances(sample)
    inside = sample.arrays["boundary_distance"] > 4.0
    assert inside.sum() > 200 and (~inside).sum() > 200
    # an interior atom has its 12 fcc neighbours at the NN distance: the lattice runs on across the box's faces
    assert np.all(np.abs(d[inside] - nn) < 1e-6)
    assert d[:, 0].min() >= 0.7 * nn - 1e-9  # no two atoms closer than the removal distance
    assert set(sample.arrays["true_class"]) == {"fcc"}
    assert set(sample.arrays["grain"]) == {0, 1, 2}
    assert sample.pbc.all() and np.all((sample.get_scaled_positions(wrap=False) >= 0)
                                       & (sample.get_scaled_positions(wrap=False) < 1))


def test_a_two_phase_polycrystal_keeps_each_phase_at_its_own_density():
    sample = snapshots.voronoi_polycrystal([("Fe", "bcc", 2.87), ("Fe", "fcc", 3.65)], 30.0, seed=1)
    d = _neighbour_distances(sample, k=1)[:, 0]
    inside = sample.arrays["boundary_distance"] > 4.0
    truth = sample.arrays["true_class"]
    assert set(truth) == {"bcc", "fcc"}
    assert np.allclose(d[inside & (truth == "bcc")], 2.87 * np.sqrt(3) / 2)
    assert np.allclose(d[inside & (truth == "fcc")], 3.65 / np.sqrt(2))


def test_peers_name_perfect_crystals():
    for name, atoms in (("fcc", bulk("Cu", "fcc", cubic=True).repeat(4)), ("bcc", bulk("W", "bcc", cubic=True).repeat(5)),
                        ("hex_rh", bulk("Mg", "hcp").repeat((5, 5, 4)))):
        labels, rates = peers.all_methods(atoms)
        for method, named in labels.items():
            assert np.all(named == name), (method, name, set(named))
            assert rates[method] > 0
    liquid_like = Atoms("Cu200", positions=np.random.default_rng(0).uniform(0, 14, (200, 3)), cell=[14] * 3, pbc=True)
    assert np.mean(peers.ptm(liquid_like) == "other") > 0.5  # random points are no crystal to PTM with its cutoff


@pytest.fixture(scope="module")
def turned_copper():
    crystal = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(5)  # 500 atoms, periodic
    return rotate(crystal, random_rotation(np.random.default_rng(4)))


def test_a_map_names_every_atom_of_a_turned_crystal(turned_copper):
    mapped, windows = local.structure_map(turned_copper, n_workers=0, progress=False, return_windows=True,
                                          stride=2.0, n_mc=4)
    n = len(turned_copper)
    assert mapped is not turned_copper and "local_class" not in turned_copper.arrays
    assert np.all(mapped.arrays["local_class"] == "fcc")
    P = mapped.arrays["local_probabilities"]
    assert P.shape == (n, len(CLASSES)) and np.allclose(P.sum(axis=1), 1.0)
    assert np.allclose(mapped.arrays["local_probability"], P.max(axis=1))
    assert np.all(mapped.arrays["local_windows"] >= 1)
    assert np.all((mapped.arrays["local_mutual_information"] >= 0) & (mapped.arrays["local_entropy"] >= 0))
    assert len(windows) == mapped.info["local_windows_total"] and set(windows["class"]) == {"fcc"}
    assert mapped.info["local_classes"].split() == list(CLASSES)


def test_a_map_is_the_same_in_any_chunking_on_dask_and_after_a_resume(turned_copper, tmp_path):
    kwargs = dict(progress=False, stride=2.5, n_mc=3, window_atoms=64)
    whole = local.structure_map(turned_copper, n_workers=0, chunk_size=10_000, **kwargs)
    pieces = local.structure_map(turned_copper, n_workers=0, chunk_size=5, out=tmp_path / "map", **kwargs)
    for name in ("local_probabilities", "local_mutual_information", "local_windows"):
        assert np.allclose(whole.arrays[name], pieces.arrays[name], atol=1e-6), name
    parts = sorted((tmp_path / "map").glob("windows-*.npz"))
    assert len(parts) > 2
    parts[1].unlink()  # as if killed before that chunk was written
    resumed = local.structure_map(turned_copper, n_workers=0, chunk_size=5, out=tmp_path / "map", **kwargs)
    assert np.allclose(resumed.arrays["local_probabilities"], whole.arrays["local_probabilities"], atol=1e-6)
    on_dask = local.structure_map(turned_copper, n_workers=1, chunk_size=7, **kwargs)
    assert np.allclose(on_dask.arrays["local_probabilities"], whole.arrays["local_probabilities"], atol=1e-6)
    from helpers.batch import _client
    client, cluster, _ = _client(None, 1)
    try:  # maps one after another on one client, as 08 does: the same arrays again must not lose their data
        for _ in range(3):
            again = local.structure_map(turned_copper, address=client, chunk_size=7, **kwargs)
            assert np.allclose(again.arrays["local_probabilities"], whole.arrays["local_probabilities"], atol=1e-6)
    finally:
        client.close()
        cluster.close()
    other = turned_copper.copy()
    other.positions[0] += 0.1
    with pytest.raises(FileExistsError, match="overwrite=True"):
        local.structure_map(other, n_workers=0, chunk_size=5, out=tmp_path / "map", **kwargs)


def test_a_map_is_written_as_extxyz_that_ase_reads_back(turned_copper, tmp_path):
    import ase.io

    mapped = local.structure_map(turned_copper, n_workers=0, progress=False, stride=3.0, n_mc=2, window_atoms=64)
    path = local.write_map(mapped, tmp_path / "map.extxyz")
    back = ase.io.read(path)
    assert list(back.arrays["local_class"]) == list(mapped.arrays["local_class"])
    assert np.allclose(back.arrays["local_mutual_information"], mapped.arrays["local_mutual_information"])
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_finite_cluster_is_mapped_without_a_cell():
    cluster = bulk("W", "bcc", a=3.165, cubic=True).repeat(6)
    cluster.pbc = False
    cluster.cell = None
    mapped = local.structure_map(cluster, n_workers=0, progress=False, stride=3.0, n_mc=2)
    assert np.mean(mapped.arrays["local_class"] == "bcc") > 0.9


@pytest.mark.parametrize("atoms, match", [
    (Atoms(), "no atoms"),
    (Atoms("Cu4", positions=np.eye(4, 3) * 2.5, cell=[10, 10, 10], pbc=(True, True, False)), "slab or a wire"),
    (Atoms("Cu10", positions=np.arange(30).reshape(10, 3) * 1.0), "smaller than one window"),
])
def test_a_map_refuses_what_it_cannot_map(atoms, match):
    with pytest.raises(ValueError, match=match):
        local.structure_map(atoms, n_workers=0, progress=False)


def test_a_map_refuses_bad_options(turned_copper):
    with pytest.raises(TypeError, match="ase.io.read"):
        local.structure_map(turned_copper.positions, n_workers=0)
    with pytest.raises(ValueError, match="window_atoms"):
        local.structure_map(turned_copper, window_atoms=5, n_workers=0)
    with pytest.raises(ValueError, match="stride"):
        local.structure_map(turned_copper, stride=0, n_workers=0)
    with pytest.raises(FileNotFoundError, match="saved .keras"):
        local.structure_map(turned_copper, model="no/such/model.keras", n_workers=0)


def test_thermal_and_coexistence_snapshots_move_their_atoms():
    hot = snapshots.thermal_snapshot("Cu", 0.5, repeat=3, steps=20, seed=0)
    nn = snapshots.nn_distance(bulk("Cu", "fcc"))
    assert 0.005 * nn < snapshots.rms_displacement(hot) < 0.2 * nn
    both = snapshots.coexistence_snapshot("Cu", repeat=(6, 3, 3), melt_steps=40, hold_steps=5, seed=0)
    liquid = both.arrays["true_class"] == "liquid"
    assert 0.4 < liquid.mean() < 0.6 and set(both.arrays["true_class"]) == {"liquid", "fcc"}
    # the hot half has left its sites far more than the held half, which moved only in the last few steps
    assert snapshots.rms_displacement(both, liquid) > 3 * snapshots.rms_displacement(both, ~liquid)
    with pytest.raises(ValueError, match="EMT describes"):
        snapshots.thermal_snapshot("W", 0.5)


def test_accuracy_by_region_and_the_flag_threshold():
    truth = np.array(["fcc"] * 6)
    named = np.array(["fcc", "fcc", "bcc", "fcc", "bcc", "fcc"])
    distance = np.array([10, 10, 10, 1, 1, 1.0])
    r = local.region_accuracy(truth, named, distance, interior=5.0)
    assert r == {"interior": 2 / 3, "boundary": 2 / 3, "n_interior": 3, "n_boundary": 3}
    u = np.arange(100.0)
    threshold = local.choose_threshold(u, np.ones(100, bool), false_alarms=0.05)
    assert np.mean(u > threshold) == pytest.approx(0.05, abs=0.011)
