"""Run every notebook of the series in numeric order with small parameters, then check what each wrote."""
import json

import nbformat
import numpy as np
import pytest

from helpers import datasets, series
from helpers.fingerprint import ring_mask

SEED = 11
# Small parameters for every notebook; a notebook without an entry here fails the test (it would
# otherwise run at full size in CI).
SMALL = {
    "01_data_generation": {"seed": SEED, "n_per_class": 12, "n_test_per_class": 4},
    "02_diffraction_fingerprints": {"seed": SEED, "n_per_class": 12, "n_test_per_class": 4},
}


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    root = tmp_path_factory.mktemp("series")
    mp = pytest.MonkeyPatch()
    for var, sub in (("CRYSTAL_DATA_DIR", "data"), ("CRYSTAL_FIGURES_DIR", "figures"),
                     ("CRYSTAL_EXECUTED_DIR", "executed")):
        mp.setenv(var, str(root / sub))
    missing = [nb.stem for nb in series.notebooks() if nb.stem not in SMALL]
    assert not missing, f"add small test parameters for {missing} to tests/test_notebooks.py"
    records = series.run_series(root / "executed", parameters=SMALL, log=lambda *a: None)
    yield root, records
    mp.undo()


def test_every_notebook_ran_in_order(executed):
    root, records = executed
    names = [r["notebook"] for r in records]
    assert names == [nb.name for nb in series.notebooks()]
    assert names[:2] == ["01_data_generation.ipynb", "02_diffraction_fingerprints.ipynb"]
    timings = json.loads((root / "executed" / "timings.json").read_text())
    assert [r["notebook"] for r in timings["notebooks"]] == names
    for name in names:
        nb = nbformat.read(root / "executed" / name, as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected, f"{name}: papermill injected no parameters (is the 'parameters' tag lost?)"


def test_01_wrote_balanced_held_out_sets(executed):
    root, _ = executed
    sets = {n: datasets.load_structures(n, {"n_per_class": 12, "n_test_per_class": 4, "seed": SEED})
            for n in datasets.STRUCTURE_SETS}
    assert np.array_equal(np.bincount(sets["train"]["label"], minlength=7), [12] * 7)
    for name in datasets.STRUCTURE_SETS[1:]:
        assert np.array_equal(np.bincount(sets[name]["label"], minlength=7), [4] * 7)
        assert np.array_equal(sets[name]["parent"], sets["test_pristine"]["parent"])
    assert sets["train"].class_names == ["bct_139", "bct_141", "hex_rh", "sc", "fcc", "diam", "bcc"]
    assert not set(sets["train"]["group"]) & set(sets["test_pristine"]["group"])
    assert set(sets["test_vacancies"]["defect"]) == {"vacancies"}
    assert np.allclose(sets["test_displacements"]["defect_level"], 0.02)
    n = sets["train"]["n_atoms"]
    assert n.min() >= 32 and 200 <= n.mean() <= 300
    for fig in ("01_class_counts", "01_one_structure_per_class", "01_pristine_vs_vacancies"):
        assert (root / "figures" / f"{fig}.png").stat().st_size > 10_000


def test_02_wrote_fingerprints_of_every_set(executed):
    root, _ = executed
    outside = ~ring_mask()
    for name in datasets.STRUCTURE_SETS:
        fps = datasets.load_fingerprints(name, {"n_per_class": 12, "n_test_per_class": 4, "seed": SEED})
        source = datasets.load_structures(name)
        assert fps.X.shape == (len(source), 64, 64, 3) and fps.X.dtype == np.float32
        assert np.array_equal(fps.y, source["label"])
        assert fps.X.min() == 0.0 and np.allclose(fps.X.max(axis=(1, 2, 3)), 1.0)
        assert np.all(fps.X[:, outside, :] == 0)
    for fig in ("02_detector", "02_one_fingerprint_per_class", "02_channels", "02_pristine_vs_defective"):
        assert (root / "figures" / f"{fig}.png").stat().st_size > 10_000


def test_02_stops_when_01_made_other_data(executed, tmp_path):
    """Asking 02 for another size than 01 made stops it, naming notebook 01 and the parameter."""
    import papermill

    nb = next(p for p in series.notebooks() if p.name.startswith("02_"))
    with pytest.raises(papermill.PapermillExecutionError, match="n_per_class"):
        papermill.execute_notebook(str(nb), str(tmp_path / "02_stale.ipynb"),
                                   parameters={"n_per_class": 13, "n_test_per_class": 4},
                                   kernel_name="python3", progress_bar=False)
    text = (tmp_path / "02_stale.ipynb").read_text()
    assert "01_data_generation.ipynb" in text and "-p n_per_class 13" in text
