"""The results page stamps numbers as one run's only when they are: same data parameters, written during the run
that timings.json times, and that run the whole series."""
import pytest

from helpers import results

DATA = {"data_seed": 0, "n_per_class": 1500, "n_test_per_class": 200, "target_atoms": 256,
        "vacancy_fraction": 0.25, "displacement_sigma": 0.02, "test_fraction": 0.2}
TIMINGS = {"notebooks": [{"notebook": "01_data_generation.ipynb", "seconds": 60.0, "peak_memory_gib": 1.0}],
           "total": {"seconds": 60.0, "peak_memory_gib": 1.0}, "machine": {"cpu": "a CPU", "cores": 2},
           "isa": "native", "complete": True, "started": "2026-12-03T10:00:00+00:00",
           "finished": "2026-12-03T10:40:00+00:00"}


def found(**change):
    out = {"cnn": {"provenance": {"params": dict(DATA)}}, "clustering": {"provenance": {"params": dict(DATA)}},
           "any": {"provenance": {"params": {**DATA, "orientation": "random", "cluster_fraction": 0.5}}},
           "written": {k: "2026-12-03T10:20:00+00:00" for k in ("cnn", "clustering", "any")},
           "timings": dict(TIMINGS)}
    out.update(change)
    return out


def test_one_whole_run_passes():
    assert results.not_one_run(found()) == []


def test_results_of_another_size_are_named():
    """Catches a page that reports 07's results of a small run beside 03's of the default size."""
    mixed = found(any={"provenance": {"params": {**DATA, "n_per_class": 150}}})
    assert any("n_per_class differs" in p and "150 in 07's" in p and "1500 in 03's" in p
               for p in results.not_one_run(mixed))


def test_results_written_outside_the_timed_run_are_named():
    """Catches a page that stamps 05's results of an older run with this run's date."""
    old = found(written={"cnn": "2026-12-03T10:20:00+00:00", "clustering": "2026-12-01T09:00:00+00:00"})
    problems = results.not_one_run(old)
    assert len(problems) == 1 and problems[0].startswith("05's results were written at 2026-12-01T09:00:00")


def test_a_partial_run_gives_no_time_of_the_whole_series():
    """Catches `--only` timings reported as the time of the whole series."""
    partial = found(timings={**TIMINGS, "complete": False})
    assert any("only some notebooks" in p for p in results.not_one_run(partial))
    times_only = {"cnn": None, "clustering": None, "any": None}
    assert "Time of the whole series" not in results.headline({**partial, **times_only})
    assert "Time of the whole series" in results.headline({**found(), **times_only})


def test_the_stamp_never_names_this_machine_for_a_run_that_did_not_record_one():
    unknown = found(timings={**TIMINGS, "machine": None})
    assert "a machine not recorded" in results.stamp(unknown)
    assert any("does not name the machine" in p for p in results.not_one_run(unknown))


def test_a_mixed_page_is_not_published(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_FIGURES_DIR", str(tmp_path / "figures"))
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRYSTAL_EXECUTED_DIR", str(tmp_path / "executed"))
    text = results.page(found(cnn=None, clustering=None, any=None, written={"cnn": "2026-12-01T09:00:00+00:00"}))
    assert results.NOT_ONE_RUN in text
    results.page_path().parent.mkdir(parents=True, exist_ok=True)
    results.page_path().write_text(text)
    readme = tmp_path / "README.md"
    readme.write_text(f"{results.START}\nold\n{results.END}\n")
    with pytest.raises(ValueError, match="make run"):
        results.publish(readme=readme, docs=tmp_path / "results.md", start=tmp_path / "start.md")
    assert "old" in readme.read_text() and not (tmp_path / "results.md").exists()


def test_start_page_times_come_from_the_run_and_the_avx2_benchmark():
    bench = {"runs": {"avx2": {"notebooks": [{"notebook": "01_data_generation.ipynb", "seconds": 90.0}]}}}
    table = results.times_table(found(bench_series=bench))
    assert "| 01_data_generation | 1.0 | 1.5 |" in table and "a CPU" in table and "AVX2" in table
    assert "| 01_data_generation | 1.0 |" in results.times_table(found())  # no benchmark: one column
    assert "no whole run" in results.times_table(found(timings={**TIMINGS, "complete": False}))


def test_fill_replaces_only_between_the_markers(tmp_path):
    page = tmp_path / "start.md"
    page.write_text(f"intro\n{results.TIMES_START}\nold\n{results.TIMES_END}\nafter\n")
    results.fill(page, results.TIMES_START, results.TIMES_END, "new table")
    assert page.read_text() == f"intro\n{results.TIMES_START}\nnew table\n{results.TIMES_END}\nafter\n"
    with pytest.raises(ValueError, match="no <!-- results:start -->"):
        results.fill(page, results.START, results.END, "x")


def test_headline_keeps_the_paper_levels_apart_from_the_range_past_them():
    rows = [{"defect": "none", "level": 0.0, "cnn": 1.0, "spglib_0.001": 1.0, "spglib_0.1": 1.0},
            {"defect": "vacancies", "level": 0.5, "cnn": 1.0, "spglib_0.001": 0.0, "spglib_0.1": 0.0},
            {"defect": "vacancies", "level": 0.95, "cnn": 0.4, "spglib_0.001": float("nan"),
             "spglib_0.1": float("nan"), "beyond_paper": True},
            {"defect": "displacements", "level": 0.2, "cnn": 0.95, "spglib_0.001": float("nan"),
             "spglib_0.1": float("nan"), "beyond_paper": True}]
    cnn = {"accuracy": {k: 1.0 for k in ("test_pristine", "test_vacancies", "test_displacements")},
           "n": {"test_pristine": 1400}, "params": DATA, "robustness": rows}
    text = results.headline({**found(), "cnn": cnn, "clustering": None, "any": None})
    assert "lowest accuracy over 1 defect levels, CNN / spglib symprec 0.001 Å / spglib symprec 0.1 Å | " \
           "100.00 % / 0.00 % / 0.00 %" in text
    assert "vacancies: 95 % of atoms (40.00 %); displacements: not up to σ = 20 % of NN" in text


def test_percent_says_not_measured_for_none_nan_and_pandas_na():
    import pandas as pd

    from helpers import config

    assert config.percent(None) == config.percent(float("nan")) == config.percent(pd.NA) == "—"
    assert config.percent(0.9986) == "99.86 %"


def test_the_page_states_each_models_threshold_of_trust_from_its_notebook():
    """Catches a page that omits the thresholds, or states one model's threshold for the other."""
    calibration = {"mutual_information": 0.0123, "quantile": 0.995, "n": 1400, "largest": 0.2}
    lines = results.trust_lines(found(cnn={"provenance": {"params": dict(DATA)}, "trust": calibration}))
    assert lines[0] == "## When not to trust an answer" and len(lines) == 4, lines
    assert "The paper's model (notebook 03): an answer is marked untrusted above a mutual information of 0.0123" in lines[2]
    assert "over 1400 held-out crystals" in lines[2] and "notebook 07" not in " ".join(lines)
    assert results.trust_lines(found()) == []
