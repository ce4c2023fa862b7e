"""helpers.classify.classify on Atoms and files, and its bad inputs."""
import math

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from helpers import models
from helpers.classify import classify, prepare_for_classification
from helpers.structures import CLASSES


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An (untrained) model saved as notebook 03 saves one: classify's plumbing does not need accuracy."""
    directory = tmp_path_factory.mktemp("model")
    models.save_model(models.build_model(seed=0), {"epochs": 0}, directory=directory)
    return directory


@pytest.fixture(scope="module")
def model(model_dir):
    return models.load_model(model_dir)[0]


def probabilities(frame):
    return frame[[f"p_{c}" for c in CLASSES]].to_numpy(float)


def test_atoms_give_one_row_each(model):
    out = classify([bulk("Cu", "fcc", a=3.61), bulk("W", "bcc", a=3.16)], model=model, n_mc=10)
    assert len(out) == 2 and out["error"].isna().all()
    assert set(out["predicted_class"]) <= set(CLASSES)
    p = probabilities(out)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert np.allclose(out["probability"], p.max(axis=1))
    assert np.all(out["predictive_entropy"].between(0, math.log(7))) and np.all(out["mutual_information"] >= 0)
    # small cells become conventional cells repeated to about 256 atoms
    assert out["n_atoms"].between(200, 300).all()
    assert out["prepared"].str.startswith("standard conventional cell").all()


def test_files_of_several_formats_agree_with_atoms(model, tmp_path):
    atoms = bulk("Si", "diamond", a=5.431)
    paths = []
    for name, fmt in (("si.cif", "cif"), ("POSCAR", "vasp"), ("si.extxyz", "extxyz")):
        ase.io.write(tmp_path / name, atoms, format=fmt)
        paths.append(tmp_path / name)
    out = classify([atoms, *paths], model=model, n_mc=10)
    assert list(out["source"][1:]) == [str(p) for p in paths] and out["error"].isna().all()
    assert (out["formula"] == "Si2").all() and (out["n_atoms"] == out["n_atoms"][0]).all()
    p = probabilities(out)
    # POSCAR and extxyz keep the cell vectors as they are: the same structure, the same answer. (CIF stores
    # lengths and angles only, so ASE reads the cell back in another orientation, and the fingerprint
    # depends on the orientation.)
    assert np.allclose(p[2:], p[0], atol=1e-5)


def test_answer_does_not_depend_on_the_batch(model):
    cu = bulk("Cu", "fcc", a=3.61)
    alone = classify(cu, model=model, n_mc=20, seed=4)
    batch = classify([bulk("W", "bcc", a=3.16), cu, bulk("Si", "diamond", a=5.43)], model=model, n_mc=20, seed=4)
    assert np.allclose(probabilities(alone)[0], probabilities(batch)[1], rtol=0, atol=1e-6)


def test_multi_frame_file_gives_a_row_per_frame(model, tmp_path):
    path = tmp_path / "two.extxyz"
    ase.io.write(path, [bulk("Cu", "fcc", a=3.61), bulk("Mg", "hcp", a=3.21, c=5.21)], format="extxyz")
    out = classify(path, model=model, n_mc=5)
    assert list(out["source"]) == [f"{path}@0", f"{path}@1"] and list(out["formula"]) == ["Cu", "Mg2"]


def test_large_defective_supercell_is_used_as_given(model):
    big = bulk("W", "bcc", a=3.16, cubic=True).repeat(5)
    rng = np.random.default_rng(0)
    del big[rng.choice(len(big), 50, replace=False)]
    big.positions += rng.normal(0, 0.05, big.positions.shape)
    prepared, how = prepare_for_classification(big)
    assert prepared is big and how == "used as given"
    out = classify(big, model=model, n_mc=5)
    assert out["n_atoms"].iloc[0] == 200 and out["prepared"].iloc[0] == "used as given"


def test_standard_orientation_model_gets_aligned_cells():
    rng = np.random.default_rng(3)
    from helpers.structures import random_rotation, rotate

    turned = rotate(bulk("W", "bcc", a=3.16, cubic=True),
                    random_rotation(rng))
    prepared, how = prepare_for_classification(turned, orientation="standard")
    assert how.startswith("standard conventional cell in standard orientation")
    assert np.allclose(prepared.cell[:] - np.diag(np.diag(prepared.cell[:])), 0, atol=1e-6)
    kept, _ = prepare_for_classification(turned)  # random: the orientation stays
    assert not np.allclose(kept.cell[:] - np.diag(np.diag(kept.cell[:])), 0, atol=1e-3)
    big = bulk("W", "bcc", a=3.16, cubic=True).repeat(5)
    assert "not aligned" in prepare_for_classification(big, orientation="standard")[1]


def test_small_cell_without_symmetry_is_repeated_as_given():
    rng = np.random.default_rng(1)
    cell = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)  # 32 atoms
    cell.positions += rng.normal(0, 0.1, cell.positions.shape)  # no symmetry left to find
    prepared, how = prepare_for_classification(cell)
    assert how.startswith("cell as given") and 200 <= len(prepared) <= 300


def test_one_bad_input_keeps_the_others(model, tmp_path):
    garbage = tmp_path / "broken.cif"
    garbage.write_text("this is not a crystal file\n")
    doubled = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    doubled.append(doubled[0])  # two atoms on one site: refused by the fingerprint itself
    inputs = [bulk("Cu", "fcc", a=3.61), garbage, tmp_path / "missing.cif", molecule("H2O"),
              bulk("NaCl", "rocksalt", a=5.64), Atoms(), bulk("W", "bcc", a=3.16), doubled]
    with pytest.warns(UserWarning, match="6 of 8 inputs could not be classified"):
        out = classify(inputs, model=model, n_mc=5)
    assert len(out) == 8
    ok = out["error"].isna()
    assert ok.tolist() == [True, False, False, False, False, False, True, False]
    assert out.loc[ok, "predicted_class"].isin(CLASSES).all() and out.loc[~ok, "predicted_class"].isna().all()
    errors = out["error"].tolist()
    assert "ase.io.read cannot read it" in errors[1]
    assert "no such file" in errors[2]
    assert "non-periodic" in errors[3]
    assert "allow_multiple_elements=True" in errors[4]
    assert "empty structure" in errors[5]
    assert "same position" in errors[7]


def test_multiple_elements_when_allowed(model):
    out = classify(bulk("NaCl", "rocksalt", a=5.64), model=model, n_mc=5, allow_multiple_elements=True)
    assert out["error"].isna().all() and out["predicted_class"].iloc[0] in CLASSES


def test_all_bad_raises_and_names_the_fix(model, tmp_path):
    with pytest.raises(ValueError, match="set atoms.pbc = True"):
        classify(molecule("CH4"), model=model)
    with pytest.raises(ValueError, match="nothing to classify"):
        classify([], model=model)
    with pytest.raises(ValueError, match="ase.Atoms objects or paths"):
        classify([42], model=model)


def test_no_trained_model_names_notebook_03(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="03_cnn_training"):
        classify(bulk("Cu"))


def test_default_model_is_the_saved_one(model_dir, model, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(model_dir))
    a = classify(bulk("Cu", "fcc", a=3.61), n_mc=5)
    b = classify(bulk("Cu", "fcc", a=3.61), model=model, n_mc=5)
    assert np.allclose(probabilities(a), probabilities(b))


def test_answer_is_averaged_over_orientations(model):
    from helpers.orientations import DEFAULT_ORIENTATIONS, orientation_probabilities

    cu = bulk("Cu", "fcc", a=3.61)
    out = classify(cu, model=model, n_mc=5, seed=2)
    assert out["n_orientations"].iloc[0] == DEFAULT_ORIENTATIONS  # the default for randomly oriented training data
    prepared, _ = prepare_for_classification(cu)
    views = orientation_probabilities(model, [prepared], n_orientations=DEFAULT_ORIENTATIONS, seed=2, n_jobs=1,
                                      progress=False)
    # MC dropout's mean over passes and views, against the deterministic mean over the views: close, not equal
    assert np.allclose(probabilities(out)[0], views.mean(axis=0)[0], atol=0.05)
    one = classify(cu, model=model, n_mc=5, seed=2, n_orientations=1)
    assert one["n_orientations"].iloc[0] == 1
    assert not np.allclose(probabilities(one), probabilities(out), atol=1e-4)
    with pytest.raises(ValueError, match="n_orientations=1"):
        classify(cu, model=model, orientation="standard", n_orientations=4)
    assert classify(cu, model=model, n_mc=5, orientation="standard")["n_orientations"].iloc[0] == 1
    with pytest.raises(ValueError, match="at least 1"):
        classify(cu, model=model, n_orientations=0)
