"""Storage: reproducible bytes, atomic writes, stale and missing data."""
import numpy as np
import pytest

from helpers import datasets

SMALL = dict(n_per_class=6, n_test_per_class=3, seed=5)


@pytest.fixture()
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def generate_and_save(**kw):
    sets = datasets.generate_structure_sets(progress=False, **kw)
    return {name: datasets.save_structure_set(ds).read_bytes() for name, ds in sets.items()}, sets


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(data_dir):
    first, sets = generate_and_save(**SMALL, n_jobs=2)
    second, _ = generate_and_save(**SMALL, n_jobs=1)
    assert first == second
    other, _ = generate_and_save(**dict(SMALL, seed=6), n_jobs=1)
    assert other["train"] != first["train"]
    assert not list(data_dir.glob(".*tmp"))  # nothing half-written left behind


def test_sets_are_balanced_labelled_and_held_out(data_dir):
    _, sets = generate_and_save(**SMALL)
    train, test = sets["train"], sets["test_pristine"]
    assert np.array_equal(np.bincount(train["label"]), [6] * 7)
    assert np.array_equal(np.bincount(test["label"]), [3] * 7)
    assert not set(train["group"]) & set(test["group"])
    for name in ("test_vacancies", "test_displacements"):
        assert np.array_equal(sets[name]["parent"], test["parent"])
    vac = sets["test_vacancies"]
    assert np.all(vac["n_atoms"] == test["n_atoms"] - (test["n_atoms"] * 0.25).astype(int))
    assert set(vac["defect"]) == {"vacancies"} and set(vac["defect_level"]) == {0.25}
    for i in range(len(train)):  # spglib label agrees with the class
        assert train["spacegroup"][i] in {139: [139], 141: [141], 166: [166, 194], 194: [166, 194], 221: [221],
                                          225: [225], 227: [227], 229: [229]}[int(train["spacegroup"][i])]
    loaded = datasets.load_structures("train", {"n_per_class": 6, "data_seed": 5})
    assert loaded.meta["params"]["data_seed"] == 5 and "spglib" in loaded.meta["versions"]
    a = loaded.atoms(0)
    assert len(a) == loaded["n_atoms"][0] and a.pbc.all()


def test_stale_and_missing_data_say_what_to_rerun(data_dir):
    with pytest.raises(FileNotFoundError, match="01_data_generation"):
        datasets.load_structures("train")
    _, sets = generate_and_save(**SMALL)
    with pytest.raises(datasets.StaleDataError, match=r"n_per_class=6.*-p n_per_class 1500"):
        datasets.load_structures("train", {"n_per_class": 1500})
    with pytest.raises(FileNotFoundError, match="02_diffraction_fingerprints"):
        datasets.load_fingerprints("test_pristine")
    fps = datasets.compute_fingerprint_set(sets["test_pristine"], n_jobs=1, progress=False)
    datasets.save_fingerprint_set(fps)
    loaded = datasets.load_fingerprints("test_pristine", {"n_per_class": 6})
    assert loaded.X.shape == (21, 64, 64, 3) and np.array_equal(loaded.y, sets["test_pristine"]["label"])
    # 01 is rerun with another seed: the fingerprints no longer belong to the structures
    generate_and_save(**dict(SMALL, seed=9))
    with pytest.raises(datasets.StaleDataError, match="rerun notebooks/02"):
        datasets.load_fingerprints("test_pristine")


def test_fingerprints_made_with_another_scale_are_refused(data_dir):
    """A fingerprint file records the settings it was made with; one made with another scale estimate (an
    earlier version of the project) is refused, naming notebook 02, instead of being reused silently."""
    _, sets = generate_and_save(**SMALL)
    fps = datasets.compute_fingerprint_set(sets["test_pristine"], n_jobs=1, progress=False)
    fps.meta["fingerprint"] = dict(fps.meta["fingerprint"], scale="mean over atoms of the shortest distance")
    datasets.save_fingerprint_set(fps)
    with pytest.raises(datasets.StaleDataError, match=r"scale: 'mean over atoms.*rerun notebooks/02"):
        datasets.load_fingerprints("test_pristine")
    del fps.meta["fingerprint"]["scale"]  # files from before the scale was recorded
    datasets.save_fingerprint_set(fps)
    with pytest.raises(datasets.StaleDataError, match=r"scale: '<missing>' there"):
        datasets.load_fingerprints("test_pristine")


def test_randomly_oriented_sets_with_clusters_for_notebook_07(data_dir):
    """07's sets: named apart from 01's, turned, and for cluster_fraction of the training parents also a cluster
    of the same crystal without a cell; the held-out sets stay blocks. Clusters survive saving and loading."""
    from helpers.neighbours import nn_scale

    sets = datasets.generate_structure_sets(**SMALL, orientation="random", cluster_fraction=0.5, progress=False,
                                            name_prefix=datasets.ANY_PREFIX)
    train = sets["train"]
    assert train.name == "any_train" and train.meta["params"]["cluster_fraction"] == 0.5
    clusters = ~train["periodic"]
    assert 0 < clusters.sum() < 7 * 6 and len(train) == 7 * 6 + clusters.sum()
    assert np.all(train["n_atoms"][clusters] == 256)
    for name in datasets.STRUCTURE_SETS[1:]:
        assert sets[name]["periodic"].all()
    datasets.save_structure_set(train)
    loaded = datasets.load_structures("any_train")
    i = int(np.flatnonzero(clusters)[0])
    cluster = loaded.atoms(i)
    assert not cluster.pbc.any() and cluster.cell.rank == 0
    # a cluster of a parent is the same crystal as its block: the same nearest-neighbour scale
    block = loaded.atoms(int(np.flatnonzero((loaded["parent"] == loaded["parent"][i]) & loaded["periodic"])[0]))
    assert nn_scale(cluster) == pytest.approx(nn_scale(block), rel=2e-3)
    with pytest.raises(ValueError, match="cluster_fraction"):
        datasets.generate_structure_sets(**SMALL, cluster_fraction=0.5, progress=False)


def test_damaged_old_or_unknown_files_name_the_notebook_to_rerun(data_dir):
    """A corrupt file, a file of another format version and a set no notebook writes each get an error that names
    the fix, not a raw BadZipFile, KeyError or FileNotFoundError."""
    import json

    from helpers import provenance

    _, sets = generate_and_save(**SMALL)
    path = datasets.structure_path("train")
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # cut short, as by a full disk
    with pytest.raises(datasets.StaleDataError, match=r"cannot be read.*rerun notebooks/01_data_generation"):
        datasets.load_structures("train")
    old = dict(sets["train"].meta, format_version=provenance.FORMAT_VERSION - 1)
    provenance.save_npz(path, sets["train"].arrays, old)
    with pytest.raises(datasets.StaleDataError, match=r"file format 1.*rerun notebooks/01"):
        datasets.load_structures("train")
    with pytest.raises(ValueError, match="unknown data set 'trian'.*test_pristine"):
        datasets.load_structures("trian")
    results = data_dir / "results.json"
    provenance.save_json(results, {"x": 1}, provenance.record("notebooks/03_cnn_training.ipynb"))
    assert provenance.load_json(results, "notebooks/03_cnn_training.ipynb")["x"] == 1
    results.write_text(results.read_text()[:20])
    with pytest.raises(datasets.StaleDataError, match=r"cannot be read.*Rerun notebooks/03"):
        provenance.load_json(results, "notebooks/03_cnn_training.ipynb")
    assert json.loads(json.dumps(provenance.record("n", {"a": 1})))["params"] == {"a": 1}
