"""The CNN-against-spglib comparison: spglib's scoring and the defective copies."""
import numpy as np
import pytest

from helpers import datasets, robustness


def test_spglib_scoring():
    assert robustness.spglib_right(166, 166, "hex_rh") and robustness.spglib_right(194, 166, "hex_rh")
    assert not robustness.spglib_right(12, 194, "hex_rh")
    assert robustness.spglib_right(225, 225, "fcc") and not robustness.spglib_right(229, 225, "fcc")
    assert not robustness.spglib_right(0, 229, "bcc")


def test_levels_start_pristine():
    levels = robustness.defect_levels([0.1], [0.02])
    assert levels == [("none", 0.0), ("vacancies", 0.1), ("displacements", 0.02)]
    assert len(robustness.defect_levels()) == 1 + 9 + 6


@pytest.fixture(scope="module")
def held_out():
    sets = datasets.generate_structure_sets(n_per_class=1, n_test_per_class=1, seed=5, n_jobs=1, progress=False)
    return sets["test_pristine"]


def test_spglib_finds_pristine_and_loses_defective(held_out):
    """spglib recognises every pristine parent and none after 25 % vacancies."""
    levels = [("none", 0.0), ("vacancies", 0.25), ("displacements", 0.001)]
    runs = robustness.run_defects(held_out, levels, n_per_class=1, seed=0, n_jobs=1, progress=False)
    assert runs["X"].shape == (21, 64, 64, 3) and runs["spglib"].shape == (21, 2)
    per, table = robustness.score(runs, predicted=runs["label"])  # a perfect classifier, for the scoring
    assert table["n"].tolist() == [7, 7, 7] and table["cnn"].tolist() == [1.0, 1.0, 1.0]
    pristine = table.iloc[0]
    assert pristine["spglib_0.001"] == 1.0 and pristine["spglib_0.1"] == 1.0
    assert table.iloc[1]["spglib_0.001"] == 0.0 and table.iloc[1]["spglib_0.1"] == 0.0
    # sigma = 0.1 % of the NN distance (about 0.003 A) is inside the loose tolerance of 0.1 A
    assert table.iloc[2]["spglib_0.1"] == 1.0
    md = robustness.table_markdown(table)
    assert md.count("\n") == 5 and "25 % of atoms" in md and "100.00 %" in md


def test_defective_copies_are_reproducible(held_out):
    levels = [("vacancies", 0.1), ("displacements", 0.04)]
    a = robustness.run_defects(held_out, levels, n_per_class=1, seed=3, n_jobs=1, progress=False)
    b = robustness.run_defects(held_out, levels, n_per_class=1, seed=3, n_jobs=2, progress=False)
    c = robustness.run_defects(held_out, levels, n_per_class=1, seed=4, n_jobs=1, progress=False)
    assert np.array_equal(a["X"], b["X"]) and np.array_equal(a["spglib"], b["spglib"])
    assert not np.array_equal(a["X"], c["X"])


def test_pick_parents():
    labels = np.array([0, 1, 0, 2, 0, 1])
    assert robustness.pick_parents(labels, 2).tolist() == [0, 2, 1, 5, 3]


def test_a_known_run_is_reused_only_where_it_is_the_same_copy(held_out, monkeypatch):
    levels = [("none", 0.0), ("vacancies", 0.1), ("displacements", 0.04)]
    first = robustness.run_defects(held_out, levels, n_per_class=1, seed=3, n_jobs=1, progress=False)
    computed = []
    real = robustness.diffraction_fingerprint
    monkeypatch.setattr(robustness, "diffraction_fingerprint", lambda a: computed.append(1) or real(a))
    again = robustness.run_defects(held_out, levels, n_per_class=1, seed=3, n_jobs=1, progress=False, known=first,
                                   keep_structures=True)
    assert again["reused"] == 21 and computed == []  # nothing computed twice
    for key in ("X", "spglib", "parent", "label", "defect", "level"):
        assert np.array_equal(again[key], first[key]), key
    assert len(again["structures"]) == 21 and again["structures"][0] is not None
    # another seed, or the levels in another order (another random draw), is not the same copy: computed afresh
    other_seed = robustness.run_defects(held_out, levels, n_per_class=1, seed=4, n_jobs=1, progress=False, known=first)
    assert other_seed["reused"] == 0 and not np.array_equal(other_seed["X"][7:], first["X"][7:])
    swapped = robustness.run_defects(held_out, [levels[0], levels[2], levels[1]], n_per_class=1, seed=3, n_jobs=1,
                                     progress=False, known=first)
    assert swapped["reused"] == 7  # the pristine copies only
    # spglib asked here but not there: asked afresh
    no_spglib = robustness.run_defects(held_out, levels, n_per_class=1, seed=3, n_jobs=1, progress=False,
                                       n_spglib_per_class=0)
    asked = robustness.run_defects(held_out, levels, n_per_class=1, seed=3, n_jobs=1, progress=False, known=no_spglib)
    assert asked["reused"] == 0 and np.array_equal(asked["spglib"], first["spglib"])


def test_runs_round_trip_through_data(held_out, tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path))
    levels = [("none", 0.0), ("vacancies", 0.1)]
    runs = robustness.run_defects(held_out, levels, n_per_class=1, seed=3, n_jobs=1, progress=False)
    robustness.save_runs(runs, {"data_seed": 5})
    back = robustness.load_runs({"data_seed": 5})
    assert back["seed"] == 3 and back["symprecs"] == runs["symprecs"]
    assert np.array_equal(back["X"], runs["X"]) and np.array_equal(back["defect"], runs["defect"])
    assert robustness.load_runs({"data_seed": 6}) is None  # made from other data: not reused


def test_levels_past_the_paper_come_last_and_keep_every_paper_levels_place():
    paper = robustness.defect_levels([0.1, 0.2], [0.02])
    extended = robustness.defect_levels([0.1, 0.2], [0.02], [0.9], [0.16])
    assert extended[:len(paper)] == paper and extended[len(paper):] == [("vacancies", 0.9), ("displacements", 0.16)]


def test_spglib_runs_only_at_the_levels_asked_and_the_range_is_scored_apart(held_out):
    levels = robustness.defect_levels([0.25], [], [0.9], [])
    runs = robustness.run_defects(held_out, levels, n_per_class=1, seed=0, n_jobs=1, progress=False,
                                  spglib_levels=levels[:2])
    at_90 = runs["level"] == 0.9
    assert np.all(runs["spglib"][at_90] == -1) and np.all(runs["spglib"][~at_90] >= 0)
    predicted = np.where(at_90, (runs["label"] + 1) % 7, runs["label"])  # right except past the paper
    per, table = robustness.score(runs, predicted, beyond_levels=[("vacancies", 0.9)])
    assert table["beyond_paper"].tolist() == [False, False, True] and table["n_spglib"].tolist() == [7, 7, 0]
    assert np.isnan(table["spglib_0.1"].iloc[2]) and table["spglib_0.1"].dtype == float  # not run: NaN
    assert "| 90 % of atoms (past the paper) | 7 " in robustness.table_markdown(table)
    assert robustness.breaking_points(table) == {"vacancies": 0.9, "displacements": None}
    assert len(robustness.paper_rows(table)) == 2
    text = " ".join(robustness.robustness_sentences(table))
    assert "7 of the 1 defect" not in text and "1 of the 1 defect levels at 99 % or more" in text
    assert "first falls below 90% at 90 % of atoms" in text
