"""Run the notebook series in numeric order with papermill, timing each notebook.

``python -m helpers.series`` runs every notebook in notebooks/ at its default (full) size and writes
executed copies to executed/ (never over the sources), plus executed/timings.json with each
notebook's wall time, the peak memory (sum of the proportional set sizes of the kernel and its
worker processes, sampled every 0.25 s), the slowest cells of each (papermill's per-cell durations: where the
time goes) and the machine, with the instruction sets the run was held to.

``--isa avx2`` (or ``avx512_bf16``) holds numpy, OpenBLAS, numba and oneDNN to a smaller instruction set
(:data:`helpers.machine.ISA_PROFILES`), so that a machine with AVX-512 or AMX also tells what a laptop with AVX2 only
would take. ``--only 03 04`` runs some notebooks and writes ``timings_only.json`` beside, never over, the whole
series' ``timings.json``. ``--lanes 2`` runs two notebooks at a time, each once those it reads have finished
(:data:`READS`): the tests do, on two cores; the times of a notebook then include the other's share of the CPU.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from pathlib import Path

from . import config

_NUMBERED = re.compile(r"^(\d+)_.+\.ipynb$")


def notebooks(directory: Path | None = None) -> list:
    """The numbered notebooks of the series, in numeric order."""
    directory = Path(directory or config.NOTEBOOKS_DIR)
    found = [p for p in directory.iterdir() if _NUMBERED.match(p.name)]
    return sorted(found, key=lambda p: int(_NUMBERED.match(p.name).group(1)))


class PeakMemory:
    """Peak of the summed PSS (or RSS where PSS is unavailable, or with ``rss=True``) of this process's descendants
    (and of this process too with ``include_self``), sampled every ``interval`` seconds in a thread."""

    def __init__(self, interval: float = 0.25, include_self: bool = False, rss: bool = False):
        import psutil

        self._psutil = psutil
        self.interval = interval
        self.include_self = include_self
        self.rss = rss
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        me = self._psutil.Process()
        for proc in ([me] if self.include_self else []) + me.children(recursive=True):
            try:
                if self.rss:
                    total += proc.memory_info().rss
                else:
                    info = proc.memory_full_info()
                    total += getattr(info, "pss", info.rss)
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def cell_profile(executed, top: int = 5) -> list:
    """The ``top`` slowest code cells of an executed notebook, from papermill's per-cell durations: dicts with the
    cell's number (0-based, counting every cell), the section it is in (the last Markdown heading before it), its
    first line and its seconds, slowest first."""
    import nbformat

    nb = nbformat.read(str(executed), as_version=4)
    cells, section = [], ""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            heading = next((line.lstrip("#").strip() for line in cell.source.splitlines() if line.startswith("#")), "")
            section = heading or section
            continue
        seconds = cell.get("metadata", {}).get("papermill", {}).get("duration")
        if cell.cell_type == "code" and seconds is not None:
            first = next((line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")), "")
            cells.append({"cell": index, "section": section[:70], "first_line": first[:90],
                          "seconds": round(float(seconds), 1)})
    return sorted(cells, key=lambda c: -c["seconds"])[:top]


#: what each notebook reads of the others (by number): 08 starts from the shipped 07 network and reads nothing of
#: them. A notebook missing here reads every one before it.
READS = {"01": (), "02": ("01",), "03": ("01", "02"), "04": ("02", "03"), "05": ("02", "03"),
         "06": ("01", "02", "03", "04", "05"), "07": ("01", "02", "03"), "08": ()}
#: with more than one lane, which of the notebooks ready to run starts first: the longest chain (03, then 07)
LANE_ORDER = ("01", "02", "03", "07", "04", "05", "06", "08")


def reads(notebook: Path, among: list) -> set:
    """The notebooks of ``among`` that ``notebook`` reads (:data:`READS`)."""
    number = notebook.name[:2]
    earlier = {nb.name[:2] for nb in among if int(nb.name[:2]) < int(number)}
    return set(READS.get(number, earlier)) & {nb.name[:2] for nb in among}


def run_series(output_dir: Path | None = None, parameters: dict | None = None, only: list | None = None,
               kernel_name: str = "python3", log=print, isa: str = "native",
               execution_timeout: int | None = None, lanes: int = 1) -> list:
    """Execute the notebooks in order; ``parameters`` maps a notebook's stem to its papermill
    parameters; ``isa`` names an instruction-set profile (``helpers.machine.ISA_PROFILES``) the kernels are held
    to; ``execution_timeout``: seconds any one cell may run before papermill stops it (None: no limit);
    ``lanes``: how many notebooks may run at once, each as soon as those it reads (:data:`READS`) have finished
    (the tests run two: 08 beside 01-03, then 04-06 beside 07, where the chain would leave a core idle; their
    times and memory then overlap, and timings.json says so). One lane (``make run``) runs them one at a time in
    numeric order, so that each notebook's time is its own. Returns one record per notebook, in the series' order
    (name, seconds, peak memory in GiB, output path, slowest cells)."""
    import os
    from datetime import datetime, timezone

    from . import machine

    if isa not in machine.ISA_PROFILES:
        raise ValueError(f"isa must be one of {tuple(machine.ISA_PROFILES)}, got {isa!r}")
    if int(lanes) < 1:
        raise ValueError(f"lanes must be at least 1, got {lanes}")
    os.environ.update(machine.ISA_PROFILES[isa])  # the kernels papermill starts inherit it
    output_dir = Path(output_dir or config.executed_dir())
    output_dir.mkdir(parents=True, exist_ok=True)
    parameters = parameters or {}
    chosen = [nb for nb in notebooks() if not only or any(nb.name.startswith(o) for o in only)]
    started, wall = datetime.now(timezone.utc).isoformat(timespec="seconds"), time.perf_counter()

    def execute(notebook: Path) -> dict:
        out = output_dir / notebook.name
        params = parameters.get(notebook.stem, {})
        log(f"running {notebook.name} {params or '(defaults)'} -> {out}")
        began = time.perf_counter() - wall
        record = _execute(notebook, out, params, kernel_name, execution_timeout, log)
        # seconds from the start of the series: which notebooks overlapped
        return {**record, "began_s": round(began, 1), "ended_s": round(time.perf_counter() - wall, 1)}

    records = _in_lanes(chosen, int(lanes), execute)
    total = {"seconds": round(sum(r["seconds"] for r in records), 1),
             "peak_memory_gib": max((r["peak_memory_gib"] for r in records), default=0.0),
             "wall_seconds": round(time.perf_counter() - wall, 1)}
    config.write_text(output_dir / ("timings_only.json" if only else "timings.json"), json.dumps(
        {"notebooks": records, "total": total, "machine": machine.describe(), "isa": isa, "complete": not only,
         "lanes": int(lanes), "started": started,
         "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=2))
    log(f"series: {total['seconds']} s in all, peak memory {total['peak_memory_gib']} GiB")
    if not only:
        from .results import write_page

        log(f"results page: {write_page()}")
    return records


def _in_lanes(chosen: list, lanes: int, execute) -> list:
    """``execute(notebook)`` for each of ``chosen``, at most ``lanes`` at once, each once those it reads
    (:func:`reads`) have finished; with more than one lane the ready ones start in :data:`LANE_ORDER`. Returns
    their records in the order of ``chosen``; a notebook that fails stops the series (those running finish)."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    def first(notebook: Path) -> tuple:
        number = notebook.name[:2]
        return (LANE_ORDER.index(number) if lanes > 1 and number in LANE_ORDER else len(LANE_ORDER), int(number))

    records, pending, running = {}, list(chosen), {}
    with ThreadPoolExecutor(max_workers=lanes) as pool:
        while pending or running:
            unfinished = {nb.name[:2] for nb in pending} | {nb.name[:2] for nb in running.values()}
            ready = sorted((nb for nb in pending if not reads(nb, chosen) & unfinished), key=first)
            for notebook in ready[: lanes - len(running)]:
                pending.remove(notebook)
                running[pool.submit(execute, notebook)] = notebook
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                records[running.pop(future).name] = future.result()
    return [records[nb.name] for nb in chosen]


def _execute(notebook: Path, out: Path, params: dict, kernel_name: str, execution_timeout, log) -> dict:
    """Run one notebook with papermill: its record (seconds, peak memory of this process's children, slowest
    cells)."""
    import papermill

    start = time.perf_counter()
    with PeakMemory() as memory:
        papermill.execute_notebook(str(notebook), str(out), parameters=params, kernel_name=kernel_name,
                                   cwd=str(notebook.parent), progress_bar=False,
                                   execution_timeout=execution_timeout)
    record = {"notebook": notebook.name, "seconds": round(time.perf_counter() - start, 1),
              "peak_memory_gib": round(memory.peak / 2**30, 3), "output": str(out),
              "parameters": params, "slowest_cells": cell_profile(out)}
    log(f"  {notebook.name}: {record['seconds']} s, peak memory {record['peak_memory_gib']} GiB")
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=None, help="folder for executed notebooks")
    parser.add_argument("--only", nargs="*", help="notebook number prefixes to run, e.g. 01 02")
    from .machine import ISA_PROFILES

    parser.add_argument("--isa", choices=list(ISA_PROFILES), default="native",
                        help="hold numpy, OpenBLAS, numba and oneDNN to these instruction sets (default: all the CPU has)")
    parser.add_argument("--lanes", type=int, default=1,
                        help="notebooks run at once, each after those it reads (default 1: one at a time, so that "
                             "each notebook's time is its own)")
    args = parser.parse_args(argv)
    run_series(args.output, only=args.only, isa=args.isa, lanes=args.lanes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
