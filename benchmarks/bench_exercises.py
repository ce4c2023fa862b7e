"""Time every exercise's rerun (``make bench-exercises``), on a copy of a default-size run's data.

An exercise's rerun is its notebook run by papermill with the parameter values the exercise names
(``helpers.exercises.EXERCISES``), as a student runs it after the default run: each rerun starts from a fresh copy of
the data folder of that run (``--data``, default data/), so no rerun sees what another wrote. ``--isa avx2`` holds
numpy, OpenBLAS, numba and oneDNN to AVX2 + FMA, as on most laptops. The target is 3 minutes a rerun.

    python benchmarks/bench_exercises.py --isa avx2 [--only 03 07]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from helpers import config, exercises, machine, series

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SECONDS = 180.0


def rerun(stem: str, number: int, parameters: dict, data: Path, isa: str) -> dict:
    import papermill

    notebooks = {p.stem: p for p in series.notebooks()}
    stems = [s for s in notebooks if s[:2] in exercises.SERIES[(stem, number)]] if (stem, number) in exercises.SERIES \
        else [stem]
    with tempfile.TemporaryDirectory(prefix="exercise_") as tmp:
        work = Path(tmp)
        shutil.copytree(data, work / "data", ignore=shutil.ignore_patterns("batch_07*"))
        os.environ.update({"CRYSTAL_DATA_DIR": str(work / "data"), "CRYSTAL_FIGURES_DIR": str(work / "figures"),
                           "CRYSTAL_EXECUTED_DIR": str(work / "executed"), **machine.ISA_PROFILES[isa]})
        start = time.perf_counter()
        error = None
        for s in stems:
            try:
                papermill.execute_notebook(str(notebooks[s]), str(work / f"{s}.ipynb"), parameters=parameters,
                                           cwd=str(notebooks[s].parent), progress_bar=False)
            except Exception as exc:  # a failing rerun is reported, not hidden
                error = f"{type(exc).__name__}: {str(exc)[-300:]}"
                break
        seconds = time.perf_counter() - start
    return {"notebook": stem, "exercise": number, "parameters": parameters, "notebooks": stems,
            "seconds": round(seconds, 1), "within_target": error is None and seconds <= TARGET_SECONDS, "error": error}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isa", choices=list(machine.ISA_PROFILES), default="avx2")
    parser.add_argument("--data", type=Path, default=None, help="data folder of a default-size run (default: data/)")
    parser.add_argument("--only", nargs="*", help="notebook number prefixes")
    args = parser.parse_args(argv)
    data = (args.data or config.data_dir()).resolve()
    saved = dict(os.environ)
    rows = []
    for stem, items in exercises.EXERCISES.items():
        if args.only and stem[:2] not in args.only:
            continue
        for number, title, parameters in items:
            if parameters is None:
                rows.append({"notebook": stem, "exercise": number, "title": title, "parameters": None,
                             "seconds": None, "within_target": None, "error": None})
                continue
            row = {"title": title, **rerun(stem, number, parameters, data, args.isa)}
            os.environ.clear()
            os.environ.update(saved)
            rows.append(row)
            print(f"{stem} exercise {number}: {row['seconds']} s{'  ERROR ' + row['error'] if row['error'] else ''}",
                  flush=True)
    kept = RESULTS / f"bench_exercises_{args.isa}.json"
    if args.only and kept.exists():  # the other notebooks' rows of an earlier run stay, in the series' order
        ran = {r["notebook"] for r in rows}
        earlier = [r for r in json.loads(kept.read_text())["rows"] if r["notebook"] not in ran]
        order = list(exercises.EXERCISES)
        rows = sorted(earlier + rows, key=lambda r: (order.index(r["notebook"]), r["exercise"]))
    m = machine.describe()
    lines = [f"# Exercise reruns, held to {machine.ISA_TEXT.get(args.isa, args.isa)}", "",
             f"CPU: {machine.describe_text()}; target {TARGET_SECONDS:.0f} s a rerun. Each rerun starts from a copy of "
             "a default-size run's data.", "", "| notebook | exercise | rerun with | seconds | within 3 min |",
             "|---|---|---|---|---|"]
    for r in rows:
        rerun_with = "no rerun (in the notebook)" if r["parameters"] is None else (
            f"`{exercises.options(r['parameters'])}`" if r["parameters"] else "its defaults")
        secs = "—" if r["seconds"] is None else (f"{r['seconds']}" + (f" (failed: {r['error']})" if r["error"] else ""))
        ok = "—" if r["within_target"] is None else ("yes" if r["within_target"] else "no")
        lines.append(f"| {r['notebook']} | {r['exercise']}. {r['title']} | {rerun_with} | {secs} | {ok} |")
    text = "\n".join(lines) + "\n"
    config.write_text(RESULTS / f"bench_exercises_{args.isa}.md", text)
    config.write_text(RESULTS / f"bench_exercises_{args.isa}.json",
                      json.dumps({"machine": m, "isa": args.isa, "target_seconds": TARGET_SECONDS, "rows": rows},
                                 indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
