"""helpers.series: the order the notebooks run in, one at a time or in lanes (without running a notebook)."""
import threading
import time

import pytest

from helpers import series


@pytest.fixture
def fake_run(monkeypatch, tmp_path):
    """series.run_series with papermill replaced by a short sleep that logs when each notebook began and ended."""
    log, lock = [], threading.Lock()

    def execute(notebook, out, params, kernel_name, execution_timeout, say):
        with lock:
            log.append(("begin", notebook.name[:2]))
        time.sleep(0.3 if notebook.name[:2] in ("03", "07") else 0.05)
        with lock:
            log.append(("end", notebook.name[:2]))
        return {"notebook": notebook.name, "seconds": 0.1, "peak_memory_gib": 0.0, "output": str(out),
                "parameters": params, "slowest_cells": []}

    monkeypatch.setattr(series, "_execute", execute)
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CRYSTAL_FIGURES_DIR", str(tmp_path / "figures"))
    return log


def test_one_lane_runs_the_notebooks_one_at_a_time_in_numeric_order(fake_run, tmp_path):
    series.run_series(tmp_path / "executed", only=["0"], log=lambda *a: None)
    numbers = [nb.name[:2] for nb in series.notebooks()]
    assert fake_run == [step for n in numbers for step in (("begin", n), ("end", n))]


def test_two_lanes_start_each_notebook_after_what_it_reads_and_overlap_the_rest(fake_run, tmp_path):
    records = series.run_series(tmp_path / "executed", only=["0"], log=lambda *a: None, lanes=2)
    assert [r["notebook"] for r in records] == [nb.name for nb in series.notebooks()]  # reported in series order
    at = {(kind, n): i for i, (kind, n) in enumerate(fake_run)}
    for n, needs in series.READS.items():
        assert all(at[("begin", n)] > at[("end", m)] for m in needs), (n, fake_run)
    running, most = set(), 0
    for kind, n in fake_run:
        running = running | {n} if kind == "begin" else running - {n}
        most = max(most, len(running))
    assert most == 2
    assert at[("begin", "08")] < at[("end", "01")]  # 08 reads nothing: it starts beside 01
    assert at[("begin", "07")] < at[("begin", "04")]  # after 03, the longest chain (07) first


def test_a_notebook_missing_from_reads_waits_for_every_one_before_it(tmp_path):
    made = [tmp_path / f"{n}_x.ipynb" for n in ("01", "02", "03", "04", "05", "06", "07", "08", "09")]
    assert series.reads(made[-1], made) == {f"0{i}" for i in range(1, 9)}
    assert series.reads(made[7], made) == set()
