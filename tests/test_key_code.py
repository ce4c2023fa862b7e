"""The science written out in the notebooks (cells tagged ``key-code``) equals the fast versions in ``helpers``.

The function definitions of those cells are taken from the notebook files as they are (not from a copy) and run
here against the helpers that the series uses: 02's direct-sum fingerprint, 03's network and its training with
``fit``, 05's naming of clusters. A notebook whose written-out science drifts from the package fails here.
"""
import ast
import json
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk

from helpers import clustering, fingerprint, models
from helpers.structures import CLASSES

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def key_code(notebook: str, **namespace) -> dict:
    """The imports and functions defined in the notebook's key-code cells, run in ``namespace``."""
    cells = [c for c in json.loads((NOTEBOOKS / notebook).read_text())["cells"]
             if "key-code" in c["metadata"].get("tags", [])]
    assert cells, f"{notebook} has no cell tagged key-code"
    body = []
    for c in cells:
        tree = ast.parse("".join(c["source"]))
        body += [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
    namespace = {"np": np, **namespace}
    exec(compile(ast.Module(body=body, type_ignores=[]), notebook, "exec"), namespace)
    return namespace


def test_02_direct_sum_fingerprint_equals_the_fast_one():
    direct = key_code("02_diffraction_fingerprints.ipynb")["direct_sum_fingerprint"]
    rng = np.random.default_rng(0)
    bcc = bulk("W", "bcc", a=3.165, cubic=True).repeat(3)
    del bcc[rng.choice(len(bcc), 10, replace=False)]  # vacancies
    hcp = bulk("Mg", "hcp", a=3.209, c=5.211).repeat((3, 3, 2))
    hcp.positions += rng.normal(0, 0.05, hcp.positions.shape)  # displacements
    nacl = bulk("NaCl", "rocksalt", a=5.64, cubic=True).repeat(2)  # two elements: two form factors
    for atoms in (bulk("Cu", "fcc", a=3.615, cubic=True).repeat(3), bcc, hcp, nacl):
        plain, fast = direct(atoms), fingerprint.diffraction_fingerprint(atoms)
        assert plain.shape == fast.shape == (64, 64, 3)
        assert np.abs(plain - fast).max() < 1e-4, atoms.get_chemical_formula()
        assert plain.max() == 1.0 and fast[fingerprint.ring_mask()].std() > 0.01  # not two flat images


def test_02_direct_sum_differs_when_a_number_is_wrong():
    """The comparison can fail: a fingerprint at the wrong wavelength is far from the fast one."""
    direct = key_code("02_diffraction_fingerprints.ipynb")["direct_sum_fingerprint"]
    atoms = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(3)
    assert np.abs(direct(atoms, wavelength=6.0e-12) - fingerprint.diffraction_fingerprint(atoms)).max() > 0.1


@pytest.fixture(scope="module")
def notebook_03():
    keras = models.keras_module()
    return key_code("03_cnn_training.ipynb", keras=keras, models=models, class_names=list(CLASSES))


def test_03_network_in_the_notebook_is_build_model(notebook_03):
    for seed in (0, 3):
        assert models.same_network(notebook_03["paper_network"](seed), models.build_model(seed=seed))
    assert not models.same_network(notebook_03["paper_network"](0), models.build_model(seed=1))  # weights differ
    assert not models.same_network(notebook_03["paper_network"](0, dropout=0.5), models.build_model(seed=0))


def test_03_training_with_fit_in_the_notebook_equals_models_train(notebook_03):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(7), 8)
    X = (rng.random((len(y), 64, 64, 3), dtype=np.float32) ** 8) * fingerprint.ring_mask()[:, :, None]
    X[np.arange(len(y)), 20 + 3 * y, 32, 0] = 1.0  # one bright pixel per class: something to learn
    X = X.astype(np.float32)
    mine, info = notebook_03["train_paper_network"](X, y, 0, epochs=2, batch_size=8, validation_fraction=0.25,
                                                    patience=None, precision="float32")
    theirs, info_theirs = models.train(X, y, epochs=2, batch_size=8, validation_fraction=0.25, seed=0,
                                       progress=False, precision="float32")
    assert all(np.array_equal(a, b) for a, b in zip(mine.get_weights(), theirs.get_weights()))
    assert info["history"] == info_theirs["history"] and info["best_epoch"] == info_theirs["best_epoch"]
    assert info["validation_index"] == info_theirs["validation_index"] and info["epochs_run"] == 2
    assert mine.dtype_policy.name == "float32"


def test_05_naming_clusters_equals_match_clusters():
    name_clusters = key_code("05_dimensionality_reduction_clustering.ipynb")["name_clusters"]
    rng = np.random.default_rng(0)
    for trial in range(20):
        labels = rng.integers(0, 7, 300)
        clusters = np.where(rng.random(300) < 0.7, rng.permutation(7)[labels], rng.integers(0, 7, 300))
        if trial % 5 == 0:
            clusters[clusters == 3] = 4  # an empty cluster
        mapping, counts = name_clusters(clusters, labels)
        assert np.array_equal(mapping, clustering.match_clusters(clusters, labels))
        assert np.array_equal(counts, clustering.contingency(clusters, labels))
