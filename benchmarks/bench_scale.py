"""The streaming batch (helpers.batch on Dask) against today's process pool, measured in one run.

1. **Throughput.** The same 2,000 prepared structures (~256 atoms, all seven classes, half with displacements;
   the structures of ``make bench``) fingerprinted by ``diffraction_fingerprints`` (a process pool on every core,
   everything in memory) and by ``run_batch(..., classify=False)`` on a LocalCluster of 1 and of 2 workers, from
   the Atoms in memory and from an ASE database that the workers read themselves. Start-up of the pool or cluster
   is included in every figure.
2. **Memory.** Peak resident memory of the whole batch (client, scheduler and workers, sampled every 0.1 s) for
   10,000 and for 100,000 structures: a 1,000-structure set of small crystals (about 48 atoms) repeated, streamed
   from a generator. Flat means the ratio stays near 1. One structure in every 1,000 has an unknown element: the
   run must give exactly those an error row and fingerprint every other one.
3. **Resume.** A batch of the 2,000 structures run from a script on standard input, killed (every process) once
   half of its chunks are written, then run again: the rerun's time against the uninterrupted run's.
4. **The field's formats.** Reading a structure set from its .npz (what the notebooks read) against reading it
   from its ASE database (notebook 01 writes both), and how fast this client parses an extxyz trajectory (the
   ceiling for trajectory input on a cluster: the client parses, the workers compute).

Writes ``benchmarks/results/bench_scale.{md,json}``, with the CPU and its flags, and what a 100-node cluster would
give on paper from the per-worker figure (docs/scaling.md explains the reasoning).

    make bench-scale        # or: .venv/bin/python benchmarks/bench_scale.py --n 2000 --memory 10000 100000
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from helpers.series import PeakMemory

RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def small_set(n: int, seed: int = 1) -> list:
    """n small prepared crystals (32-64 atoms) of all seven classes."""
    from helpers import structures

    rng = np.random.default_rng(seed)
    return [structures.prepared_parent(structures.draw_parents(structures.CLASSES[i % 7], 1, "train", seed, 0.2,
                                                               rng)[0], rng, target_atoms=48) for i in range(n)]


def timed(func):
    start = time.perf_counter()
    value = func()
    return time.perf_counter() - start, value


def throughput(atoms: list, workdir: Path, chunk_size: int) -> dict:
    import ase.db

    from helpers.batch import run_batch
    from helpers.fingerprint import diffraction_fingerprints

    n = len(atoms)
    out = {}
    seconds, _ = timed(lambda: diffraction_fingerprints(atoms, progress=False))
    out["process pool (diffraction_fingerprints, every core)"] = n / seconds
    for workers in (1, 2):
        seconds, summary = timed(lambda: run_batch(atoms, workdir / f"mem{workers}", chunk_size=chunk_size,
                                                   n_workers=workers, classify=False, progress=False, overwrite=True))
        out[f"Dask, {workers} worker{'s' if workers > 1 else ''}, Atoms in memory"] = n / seconds
        if workers == 1:
            per_worker = n / summary["worker_seconds"]
    db_path = workdir / "structures.db"
    with ase.db.connect(db_path, append=False) as db:
        for a in atoms:
            db.write(a)
    seconds, _ = timed(lambda: run_batch(str(db_path), workdir / "db2", chunk_size=chunk_size, n_workers=2,
                                         classify=False, progress=False, overwrite=True))
    out["Dask, 2 workers, ASE database read by the workers"] = n / seconds
    sizes = {kind: sum(f.stat().st_size for f in (workdir / "db2" / kind).glob("part-*")) / n
             for kind in ("table", "fingerprints")}
    return out, per_worker, sizes


def memory(counts: list, workdir: Path, chunk_size: int) -> dict:
    from ase import Atoms

    from helpers.batch import read_table, run_batch

    base = small_set(1000)
    base[500] = Atoms("X8", positions=np.random.default_rng(0).random((8, 3)) * 4, cell=[4, 4, 4], pbc=True)
    out = {}
    for n in counts:
        target = workdir / f"memory_{n}"
        with PeakMemory(interval=0.1, include_self=True, rss=True) as peak:
            seconds, summary = timed(lambda: run_batch(itertools.islice(itertools.cycle(base), n), target,
                                                       chunk_size=chunk_size, n_workers=2, classify=False,
                                                       progress=False, overwrite=True))
        table = read_table(target)
        errors = table["error"].notna()
        assert summary["structures"] == len(table) == n, summary
        assert errors.sum() == n // 1000 and set(table.index[errors] % 1000) == {500}, "one unknown element per 1,000"
        assert table["fingerprinted"].sum() == n - n // 1000
        out[n] = {"peak_gib": peak.peak / 2**30, "seconds": seconds, "structures_per_s": n / seconds,
                  "error_rows": int(errors.sum()), "fingerprinted": int(table["fingerprinted"].sum())}
        shutil.rmtree(target)  # 48 KiB of fingerprint per structure
    return out


RESUME_SCRIPT = """
import json
from helpers.batch import run_batch
summary = run_batch("{source}", "{out}", chunk_size={chunk}, n_workers=2, classify=False, progress=False)
print("SUMMARY " + json.dumps(summary))
"""


def resume(atoms: list, workdir: Path, chunk_size: int) -> dict:
    import ase.io

    from helpers.batch import finished_chunks

    source = workdir / "trajectory.extxyz"
    ase.io.write(source, atoms)
    n_chunks = -(-len(atoms) // chunk_size)

    def run(out: Path):
        script = RESUME_SCRIPT.format(source=source, out=out, chunk=chunk_size)
        return timed(lambda: subprocess.run([sys.executable, "-"], input=script, text=True, capture_output=True,
                                            check=True))

    whole, _ = run(workdir / "whole")
    target = workdir / "killed"
    script = RESUME_SCRIPT.format(source=source, out=target, chunk=chunk_size)
    process = subprocess.Popen([sys.executable, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    process.stdin.write(script)
    process.stdin.close()
    start = time.perf_counter()
    while len(finished_chunks(target)) < n_chunks // 2:
        if process.poll() is not None:
            raise RuntimeError("the batch ended before it could be killed")
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    killed_after = time.perf_counter() - start
    done = len(finished_chunks(target))
    rerun, result = run(target)
    summary = json.loads(result.stdout.split("SUMMARY ")[-1])
    return {"uninterrupted_s": whole, "killed_after_s": killed_after, "chunks_done_at_kill": done,
            "chunks": n_chunks, "resume_s": rerun, "resume_skipped": summary["skipped"]}


def formats(workdir: Path) -> dict:
    import ase.db
    import ase.io

    from helpers import datasets

    os.environ["CRYSTAL_DATA_DIR"] = str(workdir / "data")
    sets = datasets.generate_structure_sets(n_per_class=150, n_test_per_class=20, seed=0, progress=False)
    train = sets["train"]
    datasets.save_structure_set(train)
    db_path = datasets.save_structure_db(train)
    npz_s, from_npz = timed(lambda: datasets.load_structures("train").all_atoms())
    with ase.db.connect(db_path) as db:
        db_s, from_db = timed(lambda: [row.toatoms() for row in db.select(sort="id")])
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(from_npz, from_db))
    trajectory = workdir / "train.extxyz"
    ase.io.write(trajectory, from_npz)
    parse_s, frames = timed(lambda: sum(1 for _ in ase.io.iread(trajectory, index=":")))
    n = len(from_npz)
    return {"structures": n, "mean_atoms": float(np.mean([len(a) for a in from_npz])), "npz_per_s": n / npz_s,
            "db_per_s": n / db_s, "extxyz_parse_per_s": frames / parse_s}


def on_paper(per_worker: float, parse_per_s: float, chunk_size: int, nodes: int = 100,
             cores_per_node: int = 32) -> list:
    """What a cluster would give from the measured per-worker figure, and where it would stop scaling."""
    workers = nodes * cores_per_node
    ideal = workers * per_worker
    tasks_per_s = ideal / chunk_size
    fingerprint_bytes = 64 * 64 * 3 * 4
    return [
        f"- {nodes} nodes x {cores_per_node} cores = {workers:,} workers x {per_worker:.1f} structures/s per worker "
        f"(measured here: one worker's chunks, without start-up) = **{ideal:,.0f} structures/s** if nothing else limits it: 10^6 MD frames in "
        f"{1e6 / ideal:.1f} s of compute.",
        f"- Scheduler: {tasks_per_s:,.0f} chunks/s at chunk_size={chunk_size}. Dask's scheduler handles on the order "
        "of a few thousand tasks per second (about 1 ms of overhead each), so at this size the chunk must grow "
        f"(chunk_size >= {int(np.ceil(ideal / 1000 / 256) * 256)} keeps it under 1,000 chunks/s).",
        f"- Trajectory input: this client parses {parse_per_s:,.0f} extxyz frames/s, "
        f"{parse_per_s / ideal:.1%} of what the cluster could fingerprint. A trajectory read by one client would "
        "stop scaling at about "
        f"{max(1, int(parse_per_s / per_worker)):,} workers; split it into files (a folder) or load it into an "
        "ASE database, which the workers read themselves.",
        f"- Output: {fingerprint_bytes / 1024:.0f} KiB of fingerprint per structure, {ideal * fingerprint_bytes / 2**30:,.1f} "
        "GiB/s at full speed, more than a shared parallel file system gives one job; write the table only "
        "(fingerprints=False), or keep the fingerprints on node-local disks.",
        "- Model: every worker loads the two Keras models once and needs this package installed; "
        "classification adds the CNN's forward pass, which a GPU node would take instead.",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="structures for throughput and resume")
    parser.add_argument("--memory", type=int, nargs="+", default=[10_000, 100_000], help="counts for the memory test")
    parser.add_argument("--chunk-size", type=int, default=128)
    args = parser.parse_args()

    from bench_fingerprint import make_structures

    from helpers import config, machine

    print(f"CPU: {machine.describe_text()}", flush=True)
    atoms = make_structures(args.n)
    workdir = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    try:
        rates, per_worker, sizes = throughput(atoms, workdir, args.chunk_size)
        print(json.dumps(rates, indent=1), flush=True)
        peaks = memory(args.memory, workdir, args.chunk_size)
        print(json.dumps(peaks, indent=1), flush=True)
        resumed = resume(atoms, workdir, args.chunk_size)
        print(json.dumps(resumed, indent=1), flush=True)
        read = formats(workdir)
        print(json.dumps(read, indent=1), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    pool = rates["process pool (diffraction_fingerprints, every core)"]
    lines = [
        "# The streaming batch on Dask against the process pool",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine.describe_text()} by "
        "`make bench-scale` (benchmarks/bench_scale.py, whose docstring says what is timed).",
        "",
        f"## Throughput: the same {args.n:,} structures, fingerprints, start-up included (chunk_size={args.chunk_size})",
        "",
        "| how | structures/s | against the process pool |",
        "|---|---|---|",
        *[f"| {k} | {v:.1f} | {v / pool:.2f}x |" for k, v in rates.items()],
        "",
        f"One worker's own rate, its chunks' time without the cluster's start-up: {per_worker:.1f} structures/s. "
        f"Written per structure: {sizes['table']:.0f} bytes of Parquet table (without classification columns filled), "
        f"{sizes['fingerprints']:,.0f} bytes of fingerprint.",
        "",
        "## Peak memory (client + scheduler + 2 workers), a 1,000-structure set repeated",
        "",
        "| structures | peak memory | time | structures/s | error rows (unknown element) | fingerprinted |",
        "|---|---|---|---|---|---|",
        *[f"| {n:,} | {v['peak_gib']:.3f} GiB | {v['seconds']:.1f} s | {v['structures_per_s']:.1f} | "
          f"{v['error_rows']:,} | {v['fingerprinted']:,} |" for n, v in peaks.items()],
        "",
        f"Peak at {args.memory[-1]:,} against {args.memory[0]:,}: "
        f"**{peaks[args.memory[-1]]['peak_gib'] / peaks[args.memory[0]]['peak_gib']:.3f}x**.",
        "",
        "## Resume after a kill at half-way (script on standard input, every process killed)",
        "",
        f"- Uninterrupted: {resumed['uninterrupted_s']:.1f} s for {args.n:,} structures ({resumed['chunks']} chunks).",
        f"- Killed after {resumed['killed_after_s']:.1f} s with {resumed['chunks_done_at_kill']} chunks written; the "
        f"rerun skipped {resumed['resume_skipped']} and took **{resumed['resume_s']:.1f} s** "
        f"({resumed['resume_s'] / resumed['uninterrupted_s']:.2f}x the uninterrupted run).",
        "",
        f"## Reading structures ({read['structures']:,} of notebook 01's training structures, "
        f"{read['mean_atoms']:.0f} atoms on average)",
        "",
        "| from | structures/s |",
        "|---|---|",
        f"| .npz (what the notebooks read) | {read['npz_per_s']:,.0f} |",
        f"| ASE database (`ase db`, `ase gui`) | {read['db_per_s']:,.0f} |",
        f"| extxyz, parsed by `ase.io.iread` | {read['extxyz_parse_per_s']:,.0f} |",
        "",
        "## A 100-node cluster, on paper",
        "",
        *on_paper(per_worker, read["extxyz_parse_per_s"], args.chunk_size),
        "",
    ]
    result = {"machine": machine.describe(), "n": args.n, "chunk_size": args.chunk_size, "throughput": rates,
              "per_worker_structures_per_s": per_worker, "bytes_per_structure": sizes,
              "memory": {str(k): v for k, v in peaks.items()}, "resume": resumed, "formats": read}
    config.write_text(RESULTS / "bench_scale.json", json.dumps(result, indent=1))
    config.write_text(RESULTS / "bench_scale.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
