"""The results page of a run of the series, written from what the notebooks saved.

``python -m helpers.series`` calls :func:`write_page` after the last notebook: ``figures/RESULTS.md`` then holds the
headline numbers of that run (held-out accuracy, the paper's Table 1 against spglib, Table 5, the orientation-free
model, the time each notebook took), each stamped with the date and the machine it was measured on. Nothing in it
is typed by hand.

``python -m helpers.results --publish`` (``make results``) copies that page to ``docs/results.md``, its headline
table, with the stamp, into README.md between the markers ``<!-- results:start -->`` and ``<!-- results:end -->``,
and the minutes each notebook took into the start page (``docs/start.md``) between ``<!-- times:start -->`` and
``<!-- times:end -->``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import config, provenance

START, END = "<!-- results:start -->", "<!-- results:end -->"
TIMES_START, TIMES_END = "<!-- times:start -->", "<!-- times:end -->"


def page_path() -> Path:
    return config.figures_dir() / "RESULTS.md"


def _load(path: Path, notebook: str):
    """A results file with its provenance checked, or None when that notebook has not run."""
    try:
        return provenance.load_json(path, notebook)
    except FileNotFoundError:
        return None


def collect() -> dict:
    """Everything the page reports, read from the files the notebooks wrote (missing notebooks give None)."""
    from .clustering import RESULTS_FILE as CLUSTERING_FILE
    from .evaluation import RESULTS_FILE as CNN_FILE

    data = config.data_dir()
    timings_path = config.executed_dir() / "timings.json"
    files = {"cnn": data / CNN_FILE, "clustering": data / CLUSTERING_FILE,
             "any": data / "cnn_any_orientation_results.json", "local": data / "local_structure_results.json"}
    return {"cnn": _load(files["cnn"], provenance.NOTEBOOK_03),
            "clustering": _load(files["clustering"], provenance.NOTEBOOK_05),
            "any": _load(files["any"], provenance.NOTEBOOK_07),
            "local": _load(files["local"], provenance.NOTEBOOK_08),
            "written": {k: _mtime(p) for k, p in files.items() if p.exists()},
            "timings": json.loads(timings_path.read_text()) if timings_path.exists() else None,
            "bench_series": json.loads(BENCH_SERIES.read_text()) if BENCH_SERIES.exists() else None,
            "exercises": json.loads(BENCH_EXERCISES.read_text()) if BENCH_EXERCISES.exists() else None}


def _mtime(path: Path) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")


#: The data parameters every notebook of one run shares (01's): results made with others are from another run.
DATA_KEYS = ("data_seed", "n_per_class", "n_test_per_class", "target_atoms", "vacancy_fraction",
             "displacement_sigma", "test_fraction")
_NOTEBOOK_OF = {"cnn": "03", "clustering": "05", "any": "07", "local": "08"}


def not_one_run(found: dict) -> list:
    """Why the numbers in ``found`` (:func:`collect`) are not all from one run of the series at one size: results
    of 03, 05, 07 and 08 made from data of other parameters, results written outside the run that ``timings.json``
    times, or timings of only some notebooks. Empty when they are one run."""
    problems = []
    params = {k: (found[k].get("provenance") or {}).get("params") or {} for k in _NOTEBOOK_OF if found.get(k)}
    for key in DATA_KEYS:
        values = {_NOTEBOOK_OF[k]: p.get(key) for k, p in params.items() if key in p}
        if len(set(map(repr, values.values()))) > 1:
            problems.append(f"{key} differs: " + ", ".join(f"{v!r} in {nb}'s results" for nb, v in values.items()))
    timings = found.get("timings")
    if timings is None:
        problems.append("no timings.json: the series was not run with `make run` (helpers.series)")
        return problems
    if not timings.get("complete", False):
        problems.append("timings.json times only some notebooks (a run with --only)")
    started, finished = timings.get("started"), timings.get("finished")
    for k, when in (found.get("written") or {}).items():
        if started is None or finished is None or not started <= when <= finished:
            problems.append(f"{_NOTEBOOK_OF[k]}'s results were written at {when}, outside the run timed in "
                            f"timings.json ({started or 'start not recorded'} to {finished or '?'})")
    if not timings.get("machine"):
        problems.append("timings.json does not name the machine it ran on")
    return problems


#: What ``make bench-exercises`` writes: every exercise's rerun, timed with the CPU held to AVX2 + FMA.
BENCH_EXERCISES = config.ROOT / "benchmarks" / "results" / "bench_exercises_avx2.json"
#: What ``make bench-series`` writes: the series timed natively and with the CPU held to AVX2 + FMA.
BENCH_SERIES = config.ROOT / "benchmarks" / "results" / "bench_series.json"


def machine_text(m: dict, isa: str = "native") -> str:
    """A CPU in words: model, cores, vector flags, and the instruction sets a run was held to."""
    from .machine import ISA_TEXT

    flags = ", ".join(m.get("vector_flags", [])) or "none found"
    held = "" if isa == "native" else f"; held to {ISA_TEXT.get(isa, isa)}"
    return f"{m.get('cpu', '?')} ({m.get('cores', '?')} cores; vector flags: {flags}{held})"


def stamp(found: dict) -> str:
    """When and on what the numbers were measured."""
    from . import machine

    t = found.get("timings") or {}
    m = t.get("machine") or (found.get("cnn") or {}).get("machine")
    when = t.get("finished", "date not recorded")
    where = machine_text(m, t.get("isa", "native")) if m else "a machine not recorded"
    return f"Measured by `make run` finished {when}, on {where}."


def headline(found: dict) -> str:
    """The one table of headline numbers (Markdown)."""
    rows = []
    cnn, unsup, other = found.get("cnn"), found.get("clustering"), found.get("any")
    if cnn:
        a, p = cnn["accuracy"], cnn["params"]
        rows.append(("Paper's protocol (03): held-out accuracy, pristine / "
                     f"{100 * p['vacancy_fraction']:g} % vacancies / σ = {100 * p['displacement_sigma']:g} % displacements",
                     f"{config.percent(a['test_pristine'])} / {config.percent(a['test_vacancies'])} / {config.percent(a['test_displacements'])} "
                     f"(n = {cnn['n']['test_pristine']} each)"))
        defective = [r for r in cnn["robustness"] if r["defect"] != "none" and not r.get("beyond_paper", False)]
        beyond = [r for r in cnn["robustness"] if r.get("beyond_paper", False)]
        if defective:
            spglib = sorted(k for k in defective[0] if k.startswith("spglib_"))
            rows.append((f"Paper's Table 1 (03): lowest accuracy over {len(defective)} defect levels, CNN / "
                         + " / ".join(f"spglib symprec {k.split('_', 1)[1]} Å" for k in spglib),
                         " / ".join([config.percent(min(r["cnn"] for r in defective))]
                                    + [config.percent(min(r[k] for r in defective)) for k in spglib])))
        if beyond:
            import pandas as pd

            from .robustness import BROKEN, breaking_points, level_text

            table = pd.DataFrame(cnn["robustness"])
            parts = []
            for defect, first in breaking_points(table).items():
                t = table[table.defect == defect]
                if not any(r.get("beyond_paper", False) for r in cnn["robustness"] if r["defect"] == defect):
                    continue
                parts.append(f"{defect}: " + (f"{level_text(defect, first)} "
                                              f"({config.percent(float(t[t.level == first].cnn.iloc[0]))})"
                                              if first is not None else f"not up to {level_text(defect, t.level.max())}"))
            rows.append((f"Past the paper's levels (03): where the CNN first falls below {BROKEN:.0%}",
                         "; ".join(parts)))
    if unsup:
        best = max(unsup["table5"], key=lambda r: r["accuracy"])
        rows.append(("Without labels (05): best embedding + clustering, accuracy",
                     f"{config.percent(best['accuracy'])} ({best['embedding']} + {best['clustering']}, ARI {best['ari']:.4f})"))
    if other:
        f, h = other["failure"], other["held_out"]
        rows.append(("Beyond the paper (07): the paper's model, aligned / turned at random",
                     f"{config.percent(f['aligned (standard orientation)'])} / {config.percent(f['turned at random'])}"))
        n = other["n_views"]
        rows.append((f"Beyond the paper (07): any orientation, {n} views, pristine / vacancies / displacements / "
                     "clusters without a cell",
                     " / ".join(config.percent(h[k]["views"]) for k in ("test_pristine", "test_vacancies", "test_displacements",
                                                              "test_clusters") if k in h)))
    rows += local_rows(found.get("local"))
    rows += time_rows(found)
    lines = ["| what | measured |", "|---|---|"] + [f"| {w} | {v} |" for w, v in rows]
    return "\n".join(lines) + "\n"


def time_rows(found: dict) -> list:
    """Headline rows of the series' time: this run's (when complete), and each instruction-set limit of
    ``make bench-series``."""
    from .machine import ISA_TEXT

    rows = []
    timings = found.get("timings")
    if timings and timings.get("complete", False):
        first = sum(r["seconds"] for r in timings["notebooks"] if r["notebook"][:2] <= "06")
        overlap = (f" ({timings['lanes']} notebooks at a time: their times and memory overlap, "
                   f"{timings['total'].get('wall_seconds', 0) / 60:.1f} min from start to end)"
                   if timings.get("lanes", 1) > 1 else "")
        rows.append(("Time of the whole series (01–06 / all), peak memory, on the CPU named above",
                     f"{first / 60:.1f} / {timings['total']['seconds'] / 60:.1f} min, "
                     f"{timings['total']['peak_memory_gib']:.2f} GiB{overlap}"))
    for isa, run in ((found.get("bench_series") or {}).get("runs") or {}).items():
        if isa != "native":
            first = sum(r["seconds"] for r in run["notebooks"] if r["notebook"][:2] <= "06")
            rows.append((f"Time of the whole series (01–06 / all), the same CPU held to {ISA_TEXT.get(isa, isa)} "
                         f"(`make bench-series`, finished {run.get('finished', '?')})",
                         f"{first / 60:.1f} / {run['total']['seconds'] / 60:.1f} min"))
    return rows


def local_rows(local: dict | None) -> list:
    """Headline rows of notebook 08: the lowest grain-interior accuracy over its polycrystals at every σ for the map
    and its peers, the liquid flagged, and atoms per second."""
    if not local:
        return []
    table = {}
    for r in local["polycrystals"]:
        if r["interior"] == r["interior"]:  # NaN: a sample without interior atoms
            key = (r["sigma (% of NN)"], r["method"])
            table[key] = min(table.get(key, r["interior"]), r["interior"])
    sigmas = sorted({k[0] for k in table})
    methods = ("CNN map", "PTM (no cutoff)", "PTM (default cutoff)", "a-CNA")
    rows = [("Beyond the paper (08): polycrystals' grain-interior atoms named right, lowest over the samples, "
             "per σ: " + " / ".join(methods),
             "; ".join(f"σ = {s:g} %: " + " / ".join(config.percent(table[(s, m)]) for m in methods if (s, m) in table)
                       for s in sigmas))]
    liquid = local["liquid"]
    rows.append(("Beyond the paper (08): solid beside liquid, flagged by the map's uncertainty, liquid / interior crystal",
                 f"{config.percent(liquid['liquid atoms flagged'])} / {config.percent(liquid['interior crystal atoms flagged'])}"))
    speed = local["speed"]
    rows.append((f"Beyond the paper (08): atoms per second on {speed['atoms']} atoms, " + " / ".join(speed["rates"]),
                 " / ".join(f"{v:.0f}" for v in speed["rates"].values())))
    return rows


def page(found: dict) -> str:
    """The whole results page (Markdown)."""
    tables = config.tables_dir()
    out = ["# Results of the last run of the series", "", stamp(found), ""]
    problems = not_one_run(found)
    if problems:
        out += [NOT_ONE_RUN + " " + "; ".join(problems) + ". Run the whole series again (`make run`).", ""]
    out.append(headline(found))
    for title, name in (("The paper's Table 1: the CNN against spglib (notebook 03)", "03_robustness"),
                        ("Table 5: without labels (notebook 05)", "05_table5"),
                        ("Table 5 on the report's class proportions (notebook 05)", "05_table5_report_proportions"),
                        ("Any orientation: held-out sets (notebook 07)", "07_held_out"),
                        ("Any orientation: robustness (notebook 07)", "07_robustness"),
                        ("Local structure: the networks on held-out windows (notebook 08)", "08_networks"),
                        ("Local structure: grain-interior atoms named right, % (notebook 08)", "08_interior"),
                        ("Local structure: boundary atoms named right, % (notebook 08)", "08_boundary"),
                        ("Local structure: two phases (notebook 08)", "08_two_phase"),
                        ("Local structure: polycrystal atoms flagged by the map's uncertainty (notebook 08)", "08_flags"),
                        ("Local structure: EMT molecular dynamics, share named fcc (notebook 08)", "08_md"),
                        ("Local structure: atoms per second (notebook 08)", "08_speed")):
        path = tables / f"{name}.md"
        if path.exists():
            out += [f"## {title}", "", path.read_text().strip(), ""]
    out += trust_lines(found)
    out += time_sections(found)
    out.append("The figures of the run are in `figures/`, the executed notebooks in `executed/`, the course report set "
               "beside this run in `figures/REPORT.md`.")
    return "\n".join(out) + "\n"


def time_sections(found: dict) -> list:
    """The page's sections on time: per notebook of this run, per instruction-set limit (``make bench-series``),
    and per exercise rerun (``make bench-exercises``)."""
    out = []
    timings = found.get("timings")
    if timings:
        out += ["## Time and memory per notebook", "",
                f"On {machine_text(timings.get('machine', {}), timings.get('isa', 'native'))}; the slowest cell of each "
                "notebook from papermill's per-cell durations.", "",
                "| notebook | seconds | peak memory (GiB) | slowest cell (s) |", "|---|---|---|---|"]
        for r in timings["notebooks"]:
            slow = (r.get("slowest_cells") or [{}])[0]
            where = f"{slow['seconds']} s: {slow.get('section') or slow['first_line']}".replace("|", "/") if slow else "—"
            out.append(f"| {r['notebook']} | {r['seconds']} | {r['peak_memory_gib']} | {where} |")
        out.append("")
    bench = found.get("bench_series")
    if bench and bench.get("runs"):
        from .machine import ISA_TEXT

        runs = bench["runs"]
        names = [r["notebook"] for r in next(iter(runs.values()))["notebooks"]]
        secs = {isa: {r["notebook"]: r["seconds"] for r in run["notebooks"]} for isa, run in runs.items()}
        out += ["## The same series with the CPU held to fewer instruction sets (`make bench-series`)", "",
                f"On {machine_text(bench.get('machine', {}))}, each column a whole run at the default size in its own "
                "data folder (numpy, OpenBLAS, numba and oneDNN held to the instruction sets named): what a laptop "
                "with those instruction sets would take at this clock speed.", "",
                "| notebook | " + " | ".join(f"{ISA_TEXT.get(i, i)} (s)" for i in runs) + " |",
                "|---|" + "---|" * len(runs)]
        for name in names:
            out.append(f"| {name} | " + " | ".join(str(secs[i].get(name, "—")) for i in runs) + " |")
        out.append("")
    ex = found.get("exercises")
    if ex and ex.get("rows"):
        from .exercises import options
        from .machine import ISA_TEXT

        out += ["## Exercise reruns (`make bench-exercises`)", "",
                f"On {machine_text(ex.get('machine', {}), ex.get('isa', 'native'))}; each rerun from a copy of a "
                f"default-size run's data; the target is {ex.get('target_seconds', 180) / 60:.0f} min a rerun.", "",
                "| notebook | exercise | rerun with | seconds |", "|---|---|---|---|"]
        for r in ex["rows"]:
            how = ("no rerun (in the notebook)" if r["parameters"] is None
                   else f"`{options(r['parameters'])}`" if r["parameters"] else "its defaults")
            secs = "—" if r["seconds"] is None else f"{r['seconds']}" + (" (failed)" if r.get("error") else "")
            out.append(f"| {r['notebook']} | {r['exercise']}. {r['title']} | {how} | {secs} |")
        out.append("")
    return out


def trust_lines(found: dict) -> list:
    """The section on the thresholds of trust that notebooks 03 and 07 calibrated (none when neither did)."""
    from .trust import sentence

    rows = [(name, (found.get(key) or {}).get("trust")) for key, name in
            (("cnn", "The paper's model (notebook 03)"), ("any", "The orientation-free model (notebook 07)"))]
    rows = [f"* {sentence(calibration, name)}" for name, calibration in rows if calibration]
    return ["## When not to trust an answer", ""] + rows + [""] if rows else []


NOT_ONE_RUN = "**These numbers are not from one run of the series at one size:**"


def write_page() -> Path:
    """Write figures/RESULTS.md from the files of the last run."""
    return config.write_text(page_path(), page(collect()))


def times_table(found: dict) -> str:
    """Minutes per notebook of the last whole run (this CPU) and, where ``make bench-series`` ran, of the same CPU
    held to AVX2 + FMA: the start page's table."""
    from .machine import ISA_TEXT

    timings = found.get("timings") or {}
    if not timings.get("notebooks") or not timings.get("complete", True):
        return "(no whole run of the series yet: run `make run`, then `make results`)"
    bench = (found.get("bench_series") or {}).get("runs") or {}
    held = bench.get("avx2") or {}
    avx2 = {r["notebook"]: r["seconds"] for r in held.get("notebooks", [])}
    head = f"| notebook | minutes, {machine_text(timings.get('machine') or {}, timings.get('isa', 'native'))} |"
    rule = "|---|---|"
    if avx2:
        head += (f" minutes, the same CPU held to {ISA_TEXT.get('avx2', 'AVX2')} (its own default-size run, "
                 f"`make bench-series`, finished {held.get('finished', '?')}) |")
        rule += "---|"
    rows = [head, rule]
    for r in timings["notebooks"]:
        row = f"| {r['notebook'].removesuffix('.ipynb')} | {r['seconds'] / 60:.1f} |"
        if avx2:
            row += f" {avx2[r['notebook']] / 60:.1f} |" if r["notebook"] in avx2 else " — |"
        rows.append(row)
    return "\n".join(rows)


def fill(path: Path, start: str, end: str, block: str) -> None:
    """Replace what lies between the markers ``start`` and ``end`` of ``path`` by ``block`` (atomic write)."""
    body = path.read_text()
    if start not in body or end not in body:
        raise ValueError(f"{path} has no {start} ... {end} section to fill")
    head, rest = body.split(start, 1)
    _, tail = rest.split(end, 1)
    config.write_text(path, head + start + "\n" + block + "\n" + end + tail)


def publish(readme: Path = config.ROOT / "README.md", docs: Path = config.ROOT / "docs" / "results.md",
            start: Path = config.ROOT / "docs" / "start.md") -> None:
    """Copy the results page to ``docs``, its stamp and headline table into ``readme`` and the minutes per notebook
    into ``start``, each between its markers."""
    source = page_path()
    if not source.exists():
        raise FileNotFoundError(f"{source} is missing: run the series first (`make run`).")
    text = source.read_text()
    if NOT_ONE_RUN in text:
        raise ValueError(f"{source} mixes numbers of different runs (it says which); run the whole series "
                         "(`make run`), then publish")
    lines = text.splitlines()
    stamp_line = next(line for line in lines if line.startswith("Measured by"))
    first_table = []
    for line in lines[lines.index(stamp_line) + 1:]:
        if line.startswith("|"):
            first_table.append(line)
        elif first_table:
            break
    fill(readme, START, END, "\n".join([stamp_line, "", *first_table, "",
                                         "The whole page: [`docs/results.md`](docs/results.md)."]))
    fill(start, TIMES_START, TIMES_END, times_table(collect()))
    config.write_text(docs, text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publish", action="store_true", help="copy the page to docs/, its table into README.md, the times into docs/start.md")
    args = parser.parse_args(argv)
    path = write_page()
    print(f"wrote {path}")
    if args.publish:
        publish()
        print("copied it to docs/results.md, its headline table into README.md and the times into docs/start.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
