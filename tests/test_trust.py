"""helpers.trust: the threshold of trust is the stated quantile of held-out mutual information, it travels with its
model without breaking the model's checks, and classify marks what lies above it."""
import json
import shutil

import numpy as np
import pytest

from helpers import models, trust


def test_the_threshold_is_the_stated_quantile_of_the_held_out_answers():
    """Catches a threshold taken as the mean, the maximum, or another quantile than the one recorded."""
    mi = np.random.default_rng(0).exponential(0.01, size=2000)
    got = trust.calibrate(mi, n_mc=50)
    assert got["mutual_information"] == pytest.approx(np.quantile(mi, trust.TRUST_QUANTILE))
    assert got["quantile"] == trust.TRUST_QUANTILE and got["n"] == 2000 and got["largest"] == mi.max()
    assert np.mean(mi > got["mutual_information"]) == pytest.approx(1 - trust.TRUST_QUANTILE, abs=1e-3)
    assert got["basis"] == {"n_mc": 50}
    assert trust.calibrate(mi, quantile=1.0)["mutual_information"] == mi.max()


@pytest.mark.parametrize("bad, match", [([], "at least one"), ([0.1, np.nan], "not finite")])
def test_calibration_refuses_what_it_cannot_calibrate_on(bad, match):
    with pytest.raises(ValueError, match=match):
        trust.calibrate(bad)
    with pytest.raises(ValueError, match="quantile"):
        trust.calibrate([0.1, 0.2], quantile=0.0)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), "high"])
def test_a_threshold_given_by_hand_is_checked(bad):
    with pytest.raises(ValueError, match="trust_threshold"):
        trust.check_threshold(bad)
    assert trust.check_threshold(None) is None and trust.check_threshold(0) == 0.0


def test_recording_the_threshold_keeps_the_model_usable(tmp_path):
    """Catches a record that rewrites the model's metadata so that its checks fail (or the model file changes), and a
    threshold that does not reach classify."""
    for name in models.model_paths(models.PRETRAINED_DIR):
        shutil.copy(name, tmp_path / name.name)
    before = (tmp_path / models.model_paths(tmp_path)[0].name).read_bytes()
    calibration = trust.calibrate([0.001, 0.002, 0.05], views=1)
    trust.record("paper", calibration, directory=tmp_path)
    path, meta = models.check_saved_model(tmp_path, "paper")  # still its own model
    assert path.read_bytes() == before
    assert trust.threshold_of(meta) == calibration["mutual_information"]
    assert json.loads(models.model_paths(tmp_path)[1].read_text())["trust"]["n"] == 3
    assert trust.threshold_of({}) is None and trust.threshold_of({"trust": {}}) is None


def test_the_sentences_count_what_the_threshold_marks():
    """Catches sentences that count the wrong answers, or the levels past the paper's, wrongly."""
    mi = np.array([0.001, 0.002, 0.003, 0.5, 0.6, 0.002])
    right = np.array([True, True, True, False, True, True])
    calibrated = np.array([True, True, True, True, False, False])
    calibration = {"mutual_information": 0.01, "quantile": 0.995, "n": 4, "largest": 0.5}
    text = " ".join(trust.sentences(calibration, "M", mi, right, calibrated))
    assert "marks 1 of 4 answers" in text and "Past them it marks 1 of 2" in text
    assert "Of the 1 wrong answers it marks 1 (100.0 %); of the 5 right ones, 1 (20.00 %)" in text
    with pytest.raises(ValueError, match="one value per answer"):
        trust.sentences(calibration, "M", mi, right[:3], calibrated)
