"""The whole series, timed natively and with the CPU held to smaller instruction sets (``make bench-series``).

Each run executes every notebook at its default size with ``python -m helpers.series --isa ISA`` in its own data,
figures and executed folders under ``benchmarks/results/series_<isa>/``, so the runs neither share data nor touch
the project's data/. numpy, OpenBLAS, numba and oneDNN (TensorFlow's CPU kernels) are held to the instruction sets of
each profile (``helpers.machine.ISA_PROFILES``): "avx2" is a laptop with AVX2 + FMA, "avx512_bf16" an AVX-512 CPU with
bfloat16 but no AMX (a Zen 4). The native run is the reference, measured in the same invocation; each row gives the
seconds per notebook, the ratio to the native run, and the slowest cells (papermill's per-cell durations).

    python benchmarks/bench_series.py                       # native and avx2
    python benchmarks/bench_series.py --isa native avx2 avx512_bf16 --only 03 05
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers import config, machine

RESULTS = Path(__file__).resolve().parent / "results"


def run(isa: str, only: list | None) -> dict:
    base = RESULTS / f"series_{isa}"
    if base.exists() and not only:
        shutil.rmtree(base)  # a whole series starts from nothing, as on a fresh clone
    env = {**os.environ, "CRYSTAL_DATA_DIR": str(base / "data"), "CRYSTAL_FIGURES_DIR": str(base / "figures"),
           "CRYSTAL_EXECUTED_DIR": str(base / "executed")}
    cmd = [sys.executable, "-m", "helpers.series", "--isa", isa, "--output", str(base / "executed")]
    if only:
        cmd += ["--only", *only]
    print(f"== {isa}: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, env=env, check=True)
    return json.loads((base / "executed" / ("timings_only.json" if only else "timings.json")).read_text())


def table(runs: dict) -> str:
    names = [r["notebook"] for r in next(iter(runs.values()))["notebooks"]]
    isas = list(runs)
    lines = ["| notebook | " + " | ".join(f"{machine.ISA_TEXT.get(i, i)} (s)" for i in isas)
             + "".join(f" | {machine.ISA_TEXT.get(i, i)} / native" for i in isas if i != "native") + " |",
             "|---|" + "---|" * (len(isas) + sum(i != "native" for i in isas))]
    seconds = {i: {r["notebook"]: r["seconds"] for r in runs[i]["notebooks"]} for i in isas}
    for name in names + ["total"]:
        get = (lambda i: sum(seconds[i].values())) if name == "total" else (lambda i: seconds[i].get(name))
        cells = [f"{get(i):.1f}" if get(i) is not None else "—" for i in isas]
        if "native" in isas:
            cells += [f"{get(i) / get('native'):.2f}" if get(i) and get("native") else "—" for i in isas if i != "native"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def profile(runs: dict) -> str:
    out = []
    for isa, t in runs.items():
        out += [f"### Slowest cells, {machine.ISA_TEXT.get(isa, isa)}", "", "| notebook | cell | seconds | section |",
                "|---|---|---|---|"]
        for r in t["notebooks"]:
            for c in r.get("slowest_cells", [])[:3]:
                out.append(f"| {r['notebook']} | {c['cell']} | {c['seconds']} | {c.get('section', '')} |".replace("`", ""))
        out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isa", nargs="+", choices=list(machine.ISA_PROFILES), default=["native", "avx2"])
    parser.add_argument("--only", nargs="*", help="notebook number prefixes (default: the whole series)")
    args = parser.parse_args(argv)
    isas = ["native", *[i for i in args.isa if i != "native"]] if "native" in args.isa else args.isa
    runs = {isa: run(isa, args.only) for isa in isas}
    kept = RESULTS / "bench_series.json"
    if kept.exists() and not args.only:  # the other profiles' last whole runs stay beside this one's
        earlier = json.loads(kept.read_text()).get("runs", {})
        runs = {**{i: r for i, r in earlier.items() if i not in runs and r.get("complete")}, **runs}
    text = "\n".join([
        "# The notebook series, natively and with the CPU held to smaller instruction sets", "",
        f"CPU: {machine.describe_text()}. Each column is one run of the series at its default size, in its own data "
        "folder, finished at: " + ", ".join(f"{machine.ISA_TEXT.get(i, i)} {r.get('finished', '?')}" for i, r in runs.items())
        + ". A ratio to native is a ratio to the native column, whichever run made it.", "", table(runs), profile(runs)])
    path = config.write_text(RESULTS / "bench_series.md", text)
    config.write_text(RESULTS / "bench_series.json", json.dumps({"machine": machine.describe(), "runs": runs}, indent=1))
    print(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
