"""Run the notebook series in numeric order with papermill, timing each notebook.

``python -m helpers.series`` runs every notebook in notebooks/ at its default (full) size and writes
executed copies to executed/ (never over the sources), plus executed/timings.json with each
notebook's wall time, the peak memory (sum of the proportional set sizes of the kernel and its
worker processes, sampled every 0.25 s), the slowest cells of each (papermill's per-cell durations: where the
time goes) and the machine, with the instruction sets the run was held to.

``--isa avx2`` (or ``avx512_bf16``) holds numpy, OpenBLAS, numba and oneDNN to a smaller instruction set
(:data:`helpers.machine.ISA_PROFILES`), so that a machine with AVX-512 or AMX also tells what a laptop with AVX2 only
would take. ``--only 03 04`` runs some notebooks and writes ``timings_only.json`` beside, never over, the whole
series' ``timings.json``.
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


#: notebooks that read nothing the others write (08 starts from the shipped 07 network): ``beside`` may run them in
#: a second kernel beside the rest
INDEPENDENT = ("08_local_structure",)


def run_series(output_dir: Path | None = None, parameters: dict | None = None, only: list | None = None,
               kernel_name: str = "python3", log=print, isa: str = "native",
               execution_timeout: int | None = None, beside: tuple = ()) -> list:
    """Execute the notebooks in order; ``parameters`` maps a notebook's stem to its papermill
    parameters; ``isa`` names an instruction-set profile (``helpers.machine.ISA_PROFILES``) the kernels are held
    to; ``execution_timeout``: seconds any one cell may run before papermill stops it (None: no limit);
    ``beside``: stems of :data:`INDEPENDENT` notebooks to run in a second kernel from the start, beside the others
    (the tests, where a core would otherwise idle; their times and memory then overlap the others', and
    timings.json says so). Returns one record per notebook, in the series' order (name, seconds, peak memory in
    GiB, output path, slowest cells)."""
    import os
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime, timezone

    from . import machine

    if isa not in machine.ISA_PROFILES:
        raise ValueError(f"isa must be one of {tuple(machine.ISA_PROFILES)}, got {isa!r}")
    unknown = set(beside) - set(INDEPENDENT)
    if unknown:
        raise ValueError(f"only {INDEPENDENT} read nothing of the other notebooks and can run beside them, "
                         f"not {sorted(unknown)}")
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
        return _execute(notebook, out, params, kernel_name, execution_timeout, log)

    with ThreadPoolExecutor(max_workers=1) as second:
        apart = {nb.name: second.submit(execute, nb) for nb in chosen if nb.stem in beside}
        records = {nb.name: execute(nb) for nb in chosen if nb.name not in apart}
        records.update({name: future.result() for name, future in apart.items()})
    records = [records[nb.name] for nb in chosen]
    total = {"seconds": round(sum(r["seconds"] for r in records), 1),
             "peak_memory_gib": max((r["peak_memory_gib"] for r in records), default=0.0),
             "wall_seconds": round(time.perf_counter() - wall, 1)}
    config.write_text(output_dir / ("timings_only.json" if only else "timings.json"), json.dumps(
        {"notebooks": records, "total": total, "machine": machine.describe(), "isa": isa, "complete": not only,
         "beside": sorted(Path(name).stem for name in apart), "started": started,
         "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=2))
    log(f"series: {total['seconds']} s in all, peak memory {total['peak_memory_gib']} GiB")
    if not only:
        from .results import write_page

        log(f"results page: {write_page()}")
    return records


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
    args = parser.parse_args(argv)
    run_series(args.output, only=args.only, isa=args.isa)
    return 0


if __name__ == "__main__":
    sys.exit(main())
