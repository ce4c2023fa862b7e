"""helpers.orientations: the answer averaged over random orientations of the same structure."""
import numpy as np
import pytest
from ase.build import bulk

from helpers import models
from helpers.fingerprint import diffraction_fingerprints
from helpers.orientations import (combine_views, orientation_mc_dropout, orientation_probabilities,
                                  view_fingerprints, view_rotation)
from helpers.structures import rotate


@pytest.fixture(scope="module")
def model():
    return models.build_model(seed=0)


@pytest.fixture(scope="module")
def crystals():
    return [bulk("Cu", "fcc", a=3.61, cubic=True).repeat(4), bulk("W", "bcc", a=3.16, cubic=True).repeat(5),
            bulk("Mg", "hcp", a=3.21, c=5.21).repeat((5, 5, 3))]


def test_view_rotations_are_proper_reproducible_and_distinct():
    assert np.array_equal(view_rotation(0, seed=5), np.eye(3))
    rotations = [view_rotation(k, seed=5) for k in range(1, 6)]
    for r in rotations:
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(r), 1.0)
    assert np.array_equal(view_rotation(3, seed=5), rotations[2])  # the same seed and view, the same rotation
    assert not np.allclose(view_rotation(3, seed=6), rotations[2])  # another seed, another rotation
    assert min(np.abs(a - b).max() for i, a in enumerate(rotations) for b in rotations[i + 1:]) > 1e-3
    with pytest.raises(ValueError, match="whole number"):
        view_rotation(-1)


def test_a_view_is_the_fingerprint_of_the_turned_structure(crystals):
    X = view_fingerprints(crystals, 2, seed=1, n_jobs=1)
    expected = diffraction_fingerprints([rotate(a, view_rotation(2, seed=1)) for a in crystals], n_jobs=1,
                                        progress=False)
    assert np.array_equal(X, expected)
    # turning a crystal changes its fingerprint (random orientation is what makes one view a lottery)
    as_given = diffraction_fingerprints(crystals, n_jobs=1, progress=False)
    assert all(np.abs(X[i] - as_given[i]).max() > 0.05 for i in range(len(crystals)))


def test_probabilities_per_view_and_view_zero_is_the_structure_as_given(model, crystals):
    as_given = diffraction_fingerprints(crystals, n_jobs=1, progress=False)
    P = orientation_probabilities(model, crystals, n_orientations=3, seed=2, n_jobs=1, progress=False)
    assert P.shape == (3, len(crystals), 7)
    assert np.allclose(P.sum(axis=-1), 1.0, atol=1e-5)
    assert np.allclose(P[0], models.predict_proba(model, as_given), atol=1e-6)
    assert np.allclose(P[2], models.predict_proba(model, view_fingerprints(crystals, 2, seed=2, n_jobs=1)),
                       atol=1e-6)
    # passing view 0's fingerprints gives the same; the first views do not depend on how many there are
    again = orientation_probabilities(model, crystals, n_orientations=2, seed=2, fingerprints=as_given,
                                      n_jobs=1, progress=False)
    assert np.allclose(again, P[:2], atol=1e-6)
    # a structure's answer does not depend on the others in the batch
    alone = orientation_probabilities(model, crystals[1:2], n_orientations=3, seed=2, n_jobs=1, progress=False)
    assert np.allclose(alone[:, 0], P[:, 1], atol=1e-6)


def test_mc_dropout_over_views(model, crystals):
    as_given = diffraction_fingerprints(crystals, n_jobs=1, progress=False)
    one = orientation_mc_dropout(model, crystals, n_orientations=1, n_samples=7, seed=3, fingerprints=as_given)
    plain = models.mc_dropout(model, as_given, n_samples=7, seed=3)
    for key in ("mean_probability", "predictive_entropy", "mutual_information", "probability", "predicted"):
        assert np.allclose(one[key], plain[key], atol=1e-6), key
    out = orientation_mc_dropout(model, crystals, n_orientations=3, n_samples=7, seed=3, fingerprints=as_given,
                                 n_jobs=1)
    P = orientation_probabilities(model, crystals, n_orientations=3, seed=3, fingerprints=as_given, n_jobs=1,
                                  progress=False)
    assert np.allclose(out["view_probability"], P, atol=1e-5)
    assert np.allclose(out["probability"], combine_views(P, "log"), atol=1e-5)
    # the mean over 7 passes x 3 views is the mean over the views of each view's 7-pass mean
    per_view = [models.mc_dropout(model, X, n_samples=7, seed=3)["mean_probability"]
                for X in (as_given, view_fingerprints(crystals, 1, seed=3, n_jobs=1),
                          view_fingerprints(crystals, 2, seed=3, n_jobs=1))]
    assert np.allclose(out["mean_probability"], np.mean(per_view, axis=0), atol=1e-6)
    # the answer: each view's 7-pass mean, combined over the views by the pool
    assert np.allclose(out["pooled_probability"], combine_views(np.stack(per_view), "log"), atol=1e-6)
    assert np.array_equal(out["predicted"], out["pooled_probability"].argmax(axis=1))
    linear = orientation_mc_dropout(model, crystals, n_orientations=3, n_samples=7, seed=3, fingerprints=as_given,
                                    n_jobs=1, pool="linear")
    assert np.allclose(linear["pooled_probability"], linear["mean_probability"], atol=1e-9)
    assert np.allclose(linear["probability"], P.mean(axis=0), atol=1e-5)
    assert np.all(out["mutual_information"] >= 0) and np.all(out["predictive_entropy"] <= np.log(7) + 1e-9)


def test_combining_views():
    # three views of one structure, two classes: two views lean to class 0, one is sure it is not class 0
    P = np.array([[[0.9, 0.1]], [[0.9, 0.1]], [[0.001, 0.999]]])
    assert np.allclose(combine_views(P, "linear"), [[1.801 / 3, 1.199 / 3]])
    log = combine_views(P, "log")
    g = np.array([(0.9 * 0.9 * 0.001) ** (1 / 3), (0.1 * 0.1 * 0.999) ** (1 / 3)])  # geometric means
    assert np.allclose(log, [g / g.sum()]) and log.argmax() == 1  # the confident veto decides
    assert combine_views(P, "linear").argmax() == 0  # the arithmetic mean dilutes it
    # one view: both pools give that view; rows sum to 1; a probability rounded to 0 gives no nan
    rng = np.random.default_rng(0)
    one = rng.dirichlet(np.ones(7), size=(1, 5))
    for pool in ("log", "linear"):
        assert np.allclose(combine_views(one, pool), one[0])
    many = rng.dirichlet(np.ones(7), size=(4, 5)).astype(np.float32)
    many[2, 0] = [1, 0, 0, 0, 0, 0, 0]
    out = combine_views(many, "log")
    assert np.all(np.isfinite(out)) and np.allclose(out.sum(axis=1), 1.0)
    assert out[0].argmax() == 0  # the view sure of class 0 vetoes the others (floored at 1e-12, not -inf)
    # the log pool's arg max is that of the summed log-probabilities (the product of the views)
    assert np.array_equal(combine_views(many, "log").argmax(axis=1),
                          np.log(np.maximum(many, 1e-12)).sum(axis=0).argmax(axis=1))
    with pytest.raises(ValueError, match="pool must be one of"):
        combine_views(P, "mean")
    with pytest.raises(ValueError, match="shape"):
        combine_views(P[0], "log")


def test_bad_input_names_the_fix(model, crystals):
    with pytest.raises(ValueError, match="at least 1"):
        orientation_probabilities(model, crystals, n_orientations=0)
    with pytest.raises(ValueError, match="at least 1"):
        orientation_probabilities(model, crystals, n_orientations=2.5)
    with pytest.raises(ValueError, match="no structures"):
        orientation_probabilities(model, [], n_orientations=2)
    with pytest.raises(ValueError, match="2 fingerprints for 3 structures"):
        orientation_probabilities(model, crystals, fingerprints=np.zeros((2, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        orientation_probabilities(model, crystals, fingerprints=np.zeros((3, 64, 64), np.float32))


def test_shared_views_equal_the_turned_structures_fingerprints_and_do_not_depend_on_workers(model, crystals):
    from helpers.fingerprint import diffraction_fingerprint, diffraction_fingerprint_views
    from helpers.orientations import view_features

    rotations = [view_rotation(v, seed=4) for v in range(4)]
    shared = diffraction_fingerprint_views(crystals[2], rotations)
    one_by_one = np.stack([diffraction_fingerprint(rotate(crystals[2], r)) for r in rotations])
    assert np.abs(shared - one_by_one).max() < 1e-5
    many = crystals * 3  # several chunks, so n_jobs=2 really uses worker processes
    serial = view_features(model, many, n_orientations=3, seed=4, n_jobs=1)
    assert np.allclose(view_features(model, many, n_orientations=3, seed=4, n_jobs=2, block=4), serial, atol=1e-5)
