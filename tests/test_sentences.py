"""Each generated sentence says what its numbers say, and changes when they change."""
import numpy as np

from helpers import sentences

CLASSES = ["bct_139", "bct_141", "hex_rh", "sc", "fcc", "diam", "bcc"]


def test_peak_share_says_most_only_above_half():
    assert "puts most of its weight on the peaks" in sentences.peak_share("conv1", [0.6, 0.7], 0.02)
    text = sentences.peak_share("conv1", [0.131, 0.131], 0.02)  # 13.1 %: 6.6 x an even spread, not "most"
    assert "most of its weight lies off them" in text and "6.5 ×" in text and "puts most" not in text
    assert "weakly" in sentences.peak_share("conv6", [0.05], 0.02)  # 2.5 x: below the target
    assert "does not look at the peaks" in sentences.peak_share("conv6", [0.018], 0.02)
    assert "every top filter reaches 3" in sentences.peak_share("conv1", [0.07, 0.2], 0.02)
    assert "lowest is at 2.0 ×" in sentences.peak_share("conv1", [0.04, 0.2], 0.02)


def test_templates_sentence_follows_the_argmax():
    diagonal = np.eye(7) + 0.1
    assert sentences.templates_own_class(diagonal, CLASSES).startswith("Every class template")
    mixed = diagonal.copy()
    mixed[4, 6] = 2.0  # fcc's template closest to bcc's mean
    text = sentences.templates_own_class(mixed, CLASSES)
    assert text.startswith("Only 6 of 7") and "fcc (closest to bcc)" in text


def test_class_correlations_names_the_classes_that_are_not_alike():
    within = np.array([0.46, 0.8, 0.30, 0.9, 0.9, 0.9, 0.9])
    between = np.full(7, 0.35)
    text = sentences.class_correlations(CLASSES, within, np.full(7, 0.1), between)
    assert "from 0.30 (hex_rh) to 0.90" in text and "not those of hex_rh" in text and "pattern is gone" in text
    text = sentences.class_correlations(CLASSES, within, np.full(7, 0.5), np.full(7, 0.2))
    assert "Every class's parents are more alike" in text and "some of the pattern survives" in text


def test_tables_identical_only_when_every_cell_is_equal():
    a = np.diag([20] * 7)
    assert "are identical" in sentences.tables_identical(a, a.copy(), 1.0, 1.0)
    b = a.copy()
    b[0, 0], b[0, 1] = 19, 1
    assert "differ in 2 of 49 cells" in sentences.tables_identical(a, b, 1.0, 0.99)


def test_peak_share_with_one_even_share_per_map():
    text = sentences.peak_share("conv3", [0.1, 0.1], [0.02, 0.05])  # 5 x and 2 x: mean 3.5 x, lowest 2.0 x
    assert "3.5 ×" in text and "lowest is at 2.0 ×" in text and "on average" in text


def test_interior_false_alarms_names_each_crystal_over_the_limit_within_thermal_motion():
    rows = [("Cu fcc", 0, 0.0), ("Cu fcc", 6, 0.003), ("Mg hcp", 6, 0.298), ("Cu fcc", 9, 0.28), ("Mg hcp", 12, 1.0)]
    text = sentences.interior_false_alarms(rows, 7.85, "EMT Al at 0.9 Tm")
    assert "7.85 %" in text and "EMT Al at 0.9 Tm" in text
    assert "Mg hcp at σ = 6 % (29.8 %)" in text and "false alarm" in text and "1 of 3" in text
    assert "σ = 9, 12 %" in text and "28.0 % to 100.0 %" in text
    ok = sentences.interior_false_alarms(rows[:2] + rows[3:], 7.85, "EMT Al at 0.9 Tm")
    assert "within the 5.0 % allowed" in ok and "false alarm" not in ok and "at most 0.3 %" in ok
    # a sample hotter than the hottest solid moves to the other side of the line
    assert "σ = 6, 9, 12 %" in sentences.interior_false_alarms(rows, 5.0, "EMT Cu at 0.9 Tm")
