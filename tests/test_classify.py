"""helpers.classify.classify on Atoms and files: the right class for real crystals in the forms users hand in,
and clear errors for what cannot be classified."""
import math
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.spacegroup import crystal

from helpers import datasets, defects, models, user_forms
from helpers.classify import classify, prepare_for_classification
from helpers.fingerprint import diffraction_fingerprint, diffraction_fingerprints
from helpers.structures import CLASSES, random_rotation, rotate


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An (untrained) model saved as notebook 03 saves one: classify's plumbing does not need accuracy."""
    directory = tmp_path_factory.mktemp("model")
    models.save_model(models.build_model(seed=0), {"epochs": 0}, directory=directory)
    return directory


@pytest.fixture(scope="module")
def model(model_dir):
    return models.load_model(model_dir)[0]


@pytest.fixture(scope="module")
def trained():
    """A small network trained as notebook 03 trains it (the paper's protocol: standard orientation, plain
    training), on 40 generated structures per class; about half a minute on 2 cores."""
    sets = datasets.generate_structure_sets(n_per_class=40, n_test_per_class=1, seed=3, progress=False)
    X = diffraction_fingerprints(sets["train"].all_atoms(), progress=False)
    model, _ = models.train(X, sets["train"]["label"], epochs=8, batch_size=16, seed=0, progress=False,
                            standardise=False, average_weights=False)
    return model


REAL = {  # hand-built with ASE at the elements' own lattice parameters
    "fcc": bulk("Cu", "fcc", a=3.615),
    "bcc": bulk("W", "bcc", a=3.165),
    "diam": bulk("Si", "diamond", a=5.431),
    "hex_rh": bulk("Mg", "hcp", a=3.209, c=5.211),
    "sc": bulk("Po", "sc", a=3.359),
    "bct_141": crystal("Sn", [(0, 0, 0)], spacegroup=141, cellpar=[5.832, 5.832, 3.182, 90, 90, 90]),
}


def probabilities(frame):
    return frame[[f"p_{c}" for c in CLASSES]].to_numpy(float)


@pytest.mark.parametrize("truth", list(REAL))
def test_a_trained_network_names_real_crystals_in_every_form(trained, truth):
    """Its small cell, and turned supercells of other shapes than notebook 03 uses, pristine, with 25 % vacancies and
    with sigma = 2 % displacements."""
    forms = user_forms.forms(REAL[truth], np.random.default_rng(list(REAL).index(truth)),
                             repeats={"6x6x6": (6, 6, 6), "8x4x4": (8, 4, 4), "6x4x3": (6, 4, 3)})
    out = classify([atoms for _, _, atoms in forms], model=trained, n_mc=10, orientation="standard")
    assert len(forms) == 10 and out["error"].isna().all(), out["error"].tolist()
    wrong = {(form, defect): got for (form, defect, _), got in zip(forms, out["predicted_class"]) if got != truth}
    assert not wrong, wrong


def test_recut_makes_the_answer_independent_of_the_block(model):
    """The same crystal as its small cell and as supercells of any shape, turned any way: one block, one
    fingerprint, one answer."""
    rng = np.random.default_rng(0)
    small = REAL["hex_rh"]
    blocks = [prepare_for_classification(small)[0]]
    for reps in ((8, 8, 8), (2, 1, 1), (3, 2, 2), (12, 6, 6)):
        blocks.append(prepare_for_classification(rotate(small.repeat(reps), random_rotation(rng)))[0])
    # a block whose lattice is nearly cubic (orthorhombic hcp cell, 16.0 x 16.7 x 15.6 A): the lattice alone would
    # offer cubic alignments; the crystal's own symmetry, found from the atoms, does not
    near_cubic = bulk("Mg", "hcp", a=3.209, c=5.211, orthorhombic=True).repeat((5, 3, 3))
    assert np.ptp(near_cubic.cell.lengths()) < 0.07 * near_cubic.cell.lengths().mean()
    blocks.append(prepare_for_classification(rotate(near_cubic, random_rotation(rng)))[0])
    reference = diffraction_fingerprint(blocks[0])
    for block in blocks[1:]:
        assert len(block) == len(blocks[0])
        assert np.max(np.abs(diffraction_fingerprint(block) - reference)) < 1e-4
    # the fingerprint as given would differ: the block's size and shape change it
    as_given = [diffraction_fingerprint(small.repeat((8, 8, 8))), diffraction_fingerprint(small.repeat((12, 6, 6)))]
    assert np.corrcoef(as_given[0].ravel(), as_given[1].ravel())[0, 1] < 0.95


def test_defects_are_kept_through_the_recut():
    rng = np.random.default_rng(1)
    big = rotate(REAL["fcc"].repeat((8, 8, 8)), random_rotation(rng))
    vacant = defects.vacancies(big, 0.25, rng)
    block, how = prepare_for_classification(vacant)
    assert "Fm-3m (225)" in how and "standard orientation" in how
    assert 0.70 <= len(block) / 256 <= 0.80  # a quarter of the sites empty, as in the input
    moved = defects.displacements(big, 0.02, rng)
    block, _ = prepare_for_classification(moved)
    sites = np.round(block.get_scaled_positions() * 8) / 8  # the fcc block of 4 x 4 x 4 cells: sites on 1/8
    offsets = (block.get_scaled_positions() - sites) @ block.cell[:]
    assert 0.5 * 0.02 * 2.556 < np.std(offsets) < 1.5 * 0.02 * 2.556  # the displacements come along


def test_atoms_give_one_row_each(model):
    out = classify([bulk("Cu", "fcc", a=3.61), bulk("W", "bcc", a=3.16)], model=model, n_mc=10)
    assert len(out) == 2 and out["error"].isna().all()
    assert set(out["predicted_class"]) <= set(CLASSES)
    p = probabilities(out)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert np.allclose(out["probability"], p.max(axis=1))
    assert np.all(out["predictive_entropy"].between(0, math.log(7))) and np.all(out["mutual_information"] >= 0)
    assert out["n_atoms"].between(200, 300).all()
    assert out["prepared"].str.contains("standard orientation").all() and (out["n_orientations"] == 1).all()


def test_files_of_several_formats_agree_with_atoms(model, tmp_path):
    """CIF, POSCAR and extxyz: the same crystal, the same block, the same answer (CIF stores only lengths and
    angles, so the cell comes back turned; the re-cut does not care)."""
    atoms = bulk("Si", "diamond", a=5.431)
    paths = []
    for name, fmt in (("si.cif", "cif"), ("POSCAR", "vasp"), ("si.extxyz", "extxyz")):
        ase.io.write(tmp_path / name, atoms, format=fmt)
        paths.append(tmp_path / name)
    out = classify([atoms, *paths], model=model, n_mc=10)
    assert list(out["source"][1:]) == [str(p) for p in paths] and out["error"].isna().all()
    assert (out["formula"] == "Si2").all() and (out["n_atoms"] == out["n_atoms"][0]).all()
    assert np.allclose(probabilities(out)[1:], probabilities(out)[0], atol=1e-5)


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


def test_one_bad_input_keeps_the_others(model, tmp_path):
    garbage = tmp_path / "broken.cif"
    garbage.write_text("this is not a crystal file\n")
    doubled = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2)
    doubled.append(doubled[0])  # two atoms on one site
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
    assert "non-periodic" in errors[3] and "orientation-free model of notebook 07" in errors[3]
    assert "allow_multiple_elements=True" in errors[4]
    assert "empty structure" in errors[5]
    assert "same position" in errors[7]


def test_a_structure_without_a_lattice_to_find_is_refused_with_the_reason():
    rng = np.random.default_rng(2)
    amorphous = Atoms("Cu64", positions=rng.random((64, 3)) * 9.0, cell=np.eye(3) * 9.0, pbc=True)
    with pytest.raises(ValueError, match="could not find the crystal behind these 64 atoms"):
        prepare_for_classification(amorphous)


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
    with pytest.raises(ValueError, match="orientation must be one of"):
        classify(bulk("Cu"), model=model, orientation="Standard")


def test_no_trained_model_names_notebook_03(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="03_cnn_training"):
        classify(bulk("Cu"))


def test_default_model_is_the_saved_one(model_dir, model, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(model_dir))
    a = classify(bulk("Cu", "fcc", a=3.61), n_mc=5)
    b = classify(bulk("Cu", "fcc", a=3.61), model=model, n_mc=5)
    assert np.allclose(probabilities(a), probabilities(b))


def test_a_randomly_oriented_model_gets_views_and_its_own_orientation(model):
    from helpers.orientations import DEFAULT_ORIENTATIONS

    cu = rotate(bulk("Cu", "fcc", a=3.61, cubic=True).repeat(5), random_rotation(np.random.default_rng(3)))
    out = classify(cu, model=model, n_mc=5, seed=2, orientation="random")
    assert out["n_orientations"].iloc[0] == DEFAULT_ORIENTATIONS and "its own orientation" in out["prepared"].iloc[0]
    block, _ = prepare_for_classification(cu, orientation="random")
    kept = block.cell[:] / np.linalg.norm(block.cell[:], axis=1)[:, None]
    assert not np.allclose(np.abs(kept), np.eye(3), atol=1e-3)  # not brought to the standard axes
    one = classify(cu, model=model, n_mc=5, seed=2, orientation="random", n_orientations=1)
    assert one["n_orientations"].iloc[0] == 1
    assert not np.allclose(probabilities(one), probabilities(out), atol=1e-4)
    with pytest.raises(ValueError, match="n_orientations=1"):
        classify(cu, model=model, orientation="standard", n_orientations=4)
    with pytest.raises(ValueError, match="at least 1"):
        classify(cu, model=model, orientation="random", n_orientations=0)


@pytest.fixture(scope="module")
def both_models(tmp_path_factory):
    """Untrained models saved as notebooks 03 and 07 save theirs: the choice of model is plumbing."""
    directory = tmp_path_factory.mktemp("both")
    models.save_model(models.build_model(seed=0), {"epochs": 0}, directory=directory)
    models.save_model(models.build_model(seed=1), {"epochs": 0}, directory=directory, kind="any_orientation",
                      params={"target_atoms": 256, "orientation": "random"})
    return directory


def test_classify_cuts_the_blocks_and_clusters_its_models_were_trained_on(tmp_path, monkeypatch):
    """Models saved as notebooks 03 and 07 save theirs after 01 ran with target_atoms=128 and 07 with 96: classify
    must read the size where save_model records it (a wrong key gave every model 256-atom blocks)."""
    models.save_model(models.build_model(seed=0), {"epochs": 0}, directory=tmp_path,
                      params={"target_atoms": 128, "orientation": "standard"})
    models.save_model(models.build_model(seed=1), {"epochs": 0}, directory=tmp_path, kind="any_orientation",
                      params={"target_atoms": 96, "orientation": "random"})
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path))
    big = bulk("W", "bcc", a=3.165, cubic=True).repeat(7)  # 686 atoms
    out = classify([big, _cluster(big, 400)], n_mc=2, n_orientations=2)
    assert out["error"].isna().all()
    assert out["n_atoms"].tolist() == [128, 96]  # bcc: 4 x 4 x 4 conventional cells; the 96 nearest the centre
    assert classify(big, n_mc=2, target_atoms=250)["n_atoms"][0] == 250  # 5 x 5 x 5 cells: asked for, it wins


def _cluster(atoms, n=256):
    from helpers.classify import cluster_block

    cluster = cluster_block(atoms, n)[0]
    assert not cluster.pbc.any() and cluster.cell.rank == 0 and len(cluster) == n
    return cluster


def test_classify_chooses_the_model_by_what_the_structure_has(both_models, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(both_models))
    rng = np.random.default_rng(0)
    big = bulk("W", "bcc", a=3.165, cubic=True).repeat(7)
    amorphous = Atoms("Cu64", positions=rng.random((64, 3)) * 9.0, cell=np.eye(3) * 9.0, pbc=True)
    inputs = [rotate(big, random_rotation(rng)), rotate(_cluster(big), random_rotation(rng)), amorphous]
    out = classify(inputs, n_mc=3, n_orientations=4)
    assert out["error"].isna().all()
    assert out["model"].tolist() == ["paper protocol (notebook 03)", "any orientation (notebook 07)",
                                     "any orientation (notebook 07)"]
    assert out["n_orientations"].tolist() == [1, 4, 4]
    assert out["n_atoms"].tolist()[1] == 256 and "finite cluster" in out["prepared"][1]
    assert "no lattice found" in out["prepared"][2]
    # asked for, the orientation-free model also takes the crystal, re-cut in its own orientation, 16 views
    forced = classify(inputs[0], n_mc=3, model="any_orientation")
    assert forced["model"][0] == "any orientation (notebook 07)" and forced["n_orientations"][0] == 16
    assert "its own orientation" in forced["prepared"][0]
    # the paper's model, asked for, refuses the cluster and says which model would take it
    with pytest.raises(ValueError, match="model='any_orientation'"):
        classify(inputs[1], model="paper")
    with pytest.raises(ValueError, match="model kind must be one of"):
        classify(inputs[0], model="orientation-free")


def test_a_cluster_without_notebook_07s_model_names_it(model_dir, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(model_dir))  # only 03's model there
    big = bulk("Cu", "fcc", a=3.615, cubic=True).repeat(6)
    with pytest.warns(UserWarning, match="1 of 2 inputs"):
        out = classify([big, _cluster(big)], n_mc=3)
    assert out["error"].isna().tolist() == [True, False]
    assert "07_any_orientation" in out["error"][1]
    with pytest.raises(FileNotFoundError, match="07_any_orientation"):
        classify(_cluster(big))


def test_a_big_cluster_is_cut_to_the_training_block_around_its_centre():
    from helpers.classify import cluster_block

    particle = bulk("Au", "fcc", a=4.08, cubic=True).repeat(10)  # 4,000 atoms
    particle.pbc = False
    cut, how = cluster_block(particle, 256)
    assert len(cut) == 256 and "256 atoms nearest the centre of 4000" in how
    centre = particle.positions.mean(axis=0)
    kept = np.linalg.norm(cut.positions - centre, axis=1).max()
    dropped = np.sort(np.linalg.norm(particle.positions - centre, axis=1))[256]
    assert kept <= dropped + 1e-6  # distances within 1e-6 Å are one shell (ball_cut rounds them)
    small, how = cluster_block(particle[:300], 256)
    assert len(small) == 300 and "as given" in how


FIXTURES = models.PRETRAINED_DIR  # the default-size models shipped with helpers


@pytest.fixture(scope="module")
def default_models():
    """The two models of a default-size run (notebooks 03 and 07 at their defaults), shipped in helpers/pretrained by
    `make pretrained`: the networks a user of classify gets. Training them takes longer than CI allows."""
    import inspect

    import keras

    defaults = {k: v.default for k, v in inspect.signature(datasets.generate_structure_sets).parameters.items()
                if v.default is not inspect.Parameter.empty}
    defaults["data_seed"] = defaults.pop("seed")
    for kind in models.MODEL_KINDS:
        try:
            meta = models.load_model(FIXTURES, kind)[1]
        except (FileNotFoundError, models.StaleDataError) as exc:
            pytest.fail(f"{exc}\nThe models kept for the tests are missing or stale: run `make run`, then "
                        "`make pretrained`, and commit helpers/pretrained.")
        # stale in ways the model file cannot tell: trained on data of other parameters than the defaults, on
        # structures made or re-cut by other code, or saved by another major version of Keras
        made = {k: v for k, v in meta["params"].items()
                if k in defaults and k not in ("cluster_fraction", "orientation")}
        assert made == {k: defaults[k] for k in made} and len(made) >= 6, (kind, made, defaults)
        assert meta.get("structure_output_sha256") == models.structure_output_sha256(), (
            f"{kind}: helpers/{', helpers/'.join(models.STRUCTURE_CODE)} no longer make the structures the model "
            "was trained on: run `make run` (07 checks that its data are the ones the shipped model was trained on), "
            "then `make pretrained`, and commit helpers/pretrained")
        assert meta["keras"].split(".")[0] == keras.__version__.split(".")[0], (meta["keras"], keras.__version__)
    return FIXTURES


def _real_forms(small, rng):
    """[(form, structure)]: a turned supercell of over 400 atoms, pristine, with 25 % vacancies and with sigma = 2 %
    displacements; and a 256-atom cluster cut from it (no cell), turned, pristine and with each defect."""
    n = max(5, int(np.ceil((400 / len(small)) ** (1 / 3))))
    big = small.repeat((n, n - 1, n + 1))
    out = []
    for defect, make in (("pristine", lambda a: a), ("25 % vacancies", lambda a: defects.vacancies(a, 0.25, rng)),
                         ("sigma = 2 %", lambda a: defects.displacements(a, 0.02, rng))):
        out.append((f"supercell, {defect}", rotate(make(big), random_rotation(rng))))
        out.append((f"cluster, {defect}", rotate(make(_cluster(big)), random_rotation(rng))))
    return out


@pytest.mark.parametrize("truth", list(REAL))
def test_the_default_models_name_real_crystals_in_any_orientation_periodic_or_not(default_models, truth,
                                                                                 monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(default_models))
    forms = _real_forms(REAL[truth], np.random.default_rng(list(REAL).index(truth)))
    out = classify([a for _, a in forms], n_mc=10)
    assert out["error"].isna().all(), out["error"].tolist()
    expected_model = ["paper protocol (notebook 03)" if f.startswith("supercell") else "any orientation (notebook 07)"
                      for f, _ in forms]
    assert out["model"].tolist() == expected_model
    wrong = {form: got for (form, _), got in zip(forms, out["predicted_class"]) if got != truth}
    assert not wrong, wrong
    # the orientation-free model, asked for, names the periodic supercells too (re-cut in their own orientation)
    periodic = [a for f, a in forms if f.startswith("supercell")]
    forced = classify(periodic, n_mc=10, model="any_orientation")
    assert (forced["predicted_class"] == truth).all(), forced["predicted_class"].tolist()


def test_a_partly_occupied_cif_gets_an_error_row_naming_the_site(both_models, monkeypatch, tmp_path):
    from test_fingerprint import CIF

    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(both_models))
    path = tmp_path / "CuAu_disordered.cif"
    path.write_text(CIF.format(name="CuAu", a=3.75, sites="Cu1 Cu 0 0 0 0.5\nAu1 Au 0 0 0 0.5"))
    out = classify([str(path), bulk("Cu", "fcc", a=3.61, cubic=True)], n_mc=2)
    assert "partial occupancy: site 0" in out["error"][0] and "Cu 0.5 + Au 0.5" in out["error"][0]
    assert pd.isna(out["error"][1]) and out["predicted_class"][1] in CLASSES


def test_slabs_2d_materials_and_wires_are_named_and_refused_whatever_their_size(both_models, monkeypatch):
    """Graphene as a 2-atom cell was cut into a single-layer block, its 6 x 6 supercell fell through to the
    orientation-free model as "amorphous", and pbc=(T, T, F) was taken as a cluster: none of it said. Now a slab is
    named as one (by pbc or by its vacuum), the same for both sizes; a cluster in a periodic box is taken as a
    cluster and says so; graphite (interlayer gap 2.4 NN distances) is still a bulk crystal."""
    from ase.build import fcc111, graphene
    from ase.lattice.hexagonal import Graphite

    from helpers.classify import bulk_or_cluster

    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(both_models))
    sheet = graphene(vacuum=10.0)  # pbc (T, T, F), 20 Å cell along c
    slab = fcc111("Cu", size=(3, 3, 4), vacuum=10.0)
    for atoms in (sheet, sheet.repeat((6, 6, 1)), slab, fcc111("Cu", size=(6, 6, 4), vacuum=10.0)):
        with pytest.raises(ValueError, match=r"a slab or a 2D material: periodic along 2 cell vectors only \(pbc="):
            bulk_or_cluster(atoms)
        closed = atoms.copy()
        closed.pbc = True  # periodic by pbc, but a vacuum layer along c
        with pytest.raises(ValueError, match=r"slab or a 2D material: .*Å of vacuum along c\)"):
            bulk_or_cluster(closed)
    wire = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((1, 1, 6))
    wire.center(vacuum=8.0, axis=(0, 1))
    with pytest.raises(ValueError, match="a wire or a chain: periodic along 1 cell vector only"):
        bulk_or_cluster(wire)
    graphite = Graphite("C", latticeconstant={"a": 2.46, "c": 6.70}).repeat((4, 4, 2))
    assert bulk_or_cluster(graphite) == (graphite, "")
    boxed = bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4)
    boxed.center(vacuum=8.0)
    out = classify([boxed, slab], n_mc=2, n_orientations=2)
    assert "a finite cluster in a periodic box" in out["prepared"][0]
    assert out["model"][0] == "any orientation (notebook 07)" and out["n_atoms"][0] == 256
    assert "a slab or a 2D material" in out["error"][1]  # an error row, not another model's answer


def test_a_liquid_is_answered_as_no_crystalline_order_and_a_hot_solid_as_its_class(default_models, monkeypatch):
    """Molten copper (EMT molecular dynamics, 108 atoms: a periodic box too small for its lattice search to tell it
    from a crystal by size alone) is answered "no crystalline order found" and not trusted; the solid at 0.25 Tm is
    fcc and trusted. Catches a classify that names a liquid as a class without a mark (as it did: the box itself was
    taken as a P1 crystal and answered by the paper's model), and a mark that also falls on a hot solid."""
    from helpers import snapshots
    from helpers.classify import NO_LATTICE, NO_ORDER

    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(default_models))
    rng = np.random.default_rng(0)
    liquid = snapshots.liquid_snapshot("Cu", 2.0, repeat=3, melt_steps=150, steps=150)
    nn = snapshots.nn_distance(bulk("Cu", "fcc", cubic=True))
    assert snapshots.rms_displacement(liquid) > 0.4 * nn  # molten: the atoms left their sites
    solid = snapshots.thermal_snapshot("Cu", 0.25, repeat=3, steps=150)
    with pytest.warns(UserWarning, match="1 of 2 answers are not to be trusted"):
        out = classify([rotate(liquid, random_rotation(rng)), rotate(solid, random_rotation(rng))], n_mc=10)
    assert out.verdict.tolist() == [NO_ORDER, "fcc"], out[["prepared", "verdict"]].to_dict("records")
    assert out.trusted.tolist() == [False, True]
    assert out.prepared[0].startswith(NO_LATTICE) and "repeated" in out.prepared[0]
    assert out.model[1].startswith("paper") and out.mutual_information[1] <= out.trust_threshold[1]


def test_a_given_model_is_held_to_the_threshold_it_is_given(model):
    """Catches a trust_threshold that is ignored, or applied the wrong way round."""
    crystal = bulk("Cu", "fcc", a=3.615)
    assert classify(crystal, model=model, n_mc=5).trusted.isna().all()  # no threshold: not judged
    with pytest.warns(UserWarning, match="not to be trusted"):
        strict = classify(crystal, model=model, n_mc=5, trust_threshold=0.0)
    assert strict.trusted.tolist() == [False] and strict.verdict.tolist() == ["uncertain"]
    loose = classify(crystal, model=model, n_mc=5, trust_threshold=2.0)  # above ln 7: nothing is marked
    assert loose.trusted.tolist() == [True] and loose.verdict.tolist() == loose.predicted_class.tolist()
    with pytest.raises(ValueError, match="trust_threshold"):
        classify(crystal, model=model, trust_threshold=-1)
