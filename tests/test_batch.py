"""helpers.batch: a collection fingerprinted and classified chunk by chunk on a Dask LocalCluster, killed half-way
and resumed, from a script on standard input, equals the uninterrupted run; bad input becomes error rows."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ase.build
import ase.db
import ase.io
import numpy as np
import pandas as pd
import pytest
from ase import Atoms

from helpers import batch, models

FIXTURES = models.PRETRAINED_DIR  # the default-size models shipped with helpers
CHUNK = 16


def crystal(i: int, rng) -> Atoms:
    """Small crystals of five classes, thermally shaken, in a trajectory's usual supercell shape."""
    kind = i % 5
    if kind == 0:
        atoms = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    elif kind == 1:
        atoms = ase.build.bulk("W", "bcc", a=3.16, cubic=True).repeat(3)
    elif kind == 2:
        atoms = ase.build.bulk("Mg", "hcp", a=3.21, c=5.21).repeat(3)
    elif kind == 3:
        atoms = ase.build.bulk("Si", "diamond", a=5.43, cubic=True).repeat(2)
    else:
        atoms = ase.build.bulk("Po", "sc", a=3.35).repeat(4)
    atoms.positions += rng.normal(0.0, 0.02, atoms.positions.shape)
    return atoms


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """An extxyz trajectory (150 frames: one with an unknown element, one finite cluster) and an ASE database
    (150 rows with key-value pairs), written here."""
    folder = tmp_path_factory.mktemp("collection")
    rng = np.random.default_rng(7)
    frames = [crystal(i, rng) for i in range(150)]
    frames[23] = Atoms("X8", positions=rng.random((8, 3)) * 5, cell=[5, 5, 5], pbc=True)
    cluster = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True).repeat(3)
    cluster.pbc, cluster.cell = False, None
    frames[41] = cluster
    ase.io.write(folder / "md.extxyz", frames)
    with ase.db.connect(folder / "materials.db") as db:
        for i in range(150):
            db.write(crystal(i + 1000, rng), label=["fcc", "bcc", "hex_rh", "diam", "sc"][i % 5], level=i)
    return folder


SCRIPT = """
import json
from helpers.batch import run_batch
summary = run_batch(["md.extxyz", "materials.db"], "{out}", chunk_size={chunk}, n_workers=2, n_mc=4, seed=3,
                    progress=False)
print("SUMMARY " + json.dumps(summary))
"""


def environment() -> dict:
    env = dict(os.environ, CRYSTAL_DATA_DIR=str(FIXTURES), PYTHONUNBUFFERED="1")
    return env


def summary_of(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("SUMMARY ")]
    assert lines, stdout
    return json.loads(lines[-1][len("SUMMARY "):])


def fingerprints(out) -> np.ndarray:
    return batch.read_fingerprints(out).compute()


def test_killed_half_way_from_stdin_then_resumed_equals_an_uninterrupted_run(collection):
    n_chunks = -(-150 // CHUNK) * 2
    # The uninterrupted run, as `python -c`.
    whole = subprocess.run([sys.executable, "-c", SCRIPT.format(out="whole", chunk=CHUNK)], cwd=collection,
                           env=environment(), capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert summary_of(whole.stdout)["chunks"] == n_chunks

    # The same script on standard input, killed (the client, the scheduler and every worker) half-way.
    script = SCRIPT.format(out="resumed", chunk=CHUNK)
    process = subprocess.Popen([sys.executable, "-"], cwd=collection, env=environment(), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    process.stdin.write(script)
    process.stdin.close()
    deadline = time.monotonic() + 600
    while len(batch.finished_chunks(collection / "resumed")) < n_chunks // 2:
        assert process.poll() is None, process.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_at_kill = batch.finished_chunks(collection / "resumed")
    assert n_chunks // 2 <= len(done_at_kill) < n_chunks, "the kill came too late to test resuming"
    for number in done_at_kill:  # every chunk marked finished is whole: its table and its fingerprints load
        part = pd.read_parquet(collection / "resumed" / batch.TABLE_DIR / batch.part_name(number, ".parquet"))
        fp = np.load(collection / "resumed" / batch.FINGERPRINT_DIR / batch.part_name(number, ".npy"))
        assert len(part) == len(fp) > 0

    resumed = subprocess.run([sys.executable, "-"], input=script, cwd=collection, env=environment(),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = summary_of(resumed.stdout)
    assert summary["skipped"] >= len(done_at_kill) and summary["computed"] == n_chunks - summary["skipped"]
    assert not list((collection / "resumed").rglob(".tmp-*")), "a temporary file was left behind"

    expected, got = batch.read_table(collection / "whole"), batch.read_table(collection / "resumed")
    assert len(got) == 300 and list(got["index"]) == list(range(300))
    pd.testing.assert_frame_equal(got, expected)
    np.testing.assert_array_equal(fingerprints(collection / "resumed"), fingerprints(collection / "whole"))

    # What the rows say: the unknown element is an error row, the cluster went to notebook 07's model, the
    # database's key-value pairs came along, and the crystals were named.
    bad = got.loc[23]
    assert bad["source"] == "md.extxyz@23" and "unknown element" in bad["error"] and not bad["fingerprinted"]
    assert np.all(np.isnan(fingerprints(collection / "whole")[23]))
    assert got.loc[41, "model"] == "any orientation (notebook 07)"
    assert got["error"].notna().sum() == 1
    db_rows = got[got["source"].str.startswith("materials.db")]
    labels = db_rows["key_value_pairs"].map(lambda s: json.loads(s)["label"])
    assert (db_rows["predicted_class"] == labels).mean() > 0.9
    frames = got[got["source"].str.startswith("md.extxyz") & got["error"].isna()]
    truth = np.array(["fcc", "bcc", "hex_rh", "diam", "sc"])[frames["index"].to_numpy() % 5]
    assert (frames["predicted_class"].to_numpy() == truth).mean() > 0.9
    # each answer's trust travels into the table: judged against the shipped model's threshold, with its verdict
    answered = got[got["error"].isna()]
    assert answered["trusted"].notna().all() and answered["trust_threshold"].notna().all()
    kept = answered[answered["trusted"]]
    assert (kept["verdict"] == kept["predicted_class"]).all()
    assert (kept["mutual_information"] <= kept["trust_threshold"]).all()


def test_bad_input_at_scale_becomes_error_rows_and_costs_the_others_nothing(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        ase.io.write(folder / f"good_{i}.cif", crystal(i, rng))
    (folder / "corrupt.cif").write_text("data_broken\n_cell_length_a 3.6\nloop_\n_atom_site_label\n")
    (folder / "notes.txt").write_text("not a structure\n")
    ase.io.write(folder / "unknown.xyz", Atoms("X4", positions=rng.random((4, 3)) * 3))
    two_frames = tmp_path / "two_then_garbage.extxyz"
    ase.io.write(two_frames, [crystal(0, rng), crystal(1, rng)])
    with open(two_frames, "a") as handle:
        handle.write("12\nthis frame is cut short\nCu 0 0 0\n")
    database = tmp_path / "first.db"  # a database before a folder and a trajectory: each chunk reads its own source
    with ase.db.connect(database) as db:
        for i in range(3):
            db.write(crystal(i, rng), label=f"row{i}")
    out = tmp_path / "out"
    summary = batch.run_batch([str(database), str(folder), str(two_frames)], out, chunk_size=4, n_workers=1,
                              classify=False, progress=False)
    table = batch.read_table(out)
    by_source = table.set_index("source")
    assert summary["structures"] == 3 + 9 + 3 and len(table) == 15
    assert list(table["source"][:3]) == [f"{database}:id={i}" for i in (1, 2, 3)]
    assert [json.loads(v)["label"] for v in table["key_value_pairs"][:3]] == ["row0", "row1", "row2"]
    assert by_source.loc[str(folder / "good_3.cif"), "fingerprinted"]
    assert "cannot read" in by_source.loc[str(folder / "corrupt.cif"), "error"]
    assert "cannot read" in by_source.loc[str(folder / "notes.txt"), "error"]
    assert "unknown element" in by_source.loc[str(folder / "unknown.xyz"), "error"]
    assert "from frame 2 on" in by_source.loc[f"{two_frames}@2", "error"]
    assert table["fingerprinted"].sum() == 3 + 6 + 2 and summary["errors"] == 4
    X = fingerprints(out)
    assert np.all(np.isfinite(X[table["fingerprinted"].to_numpy()]))
    assert np.all(np.isnan(X[~table["fingerprinted"].to_numpy()]))


def test_a_rerun_with_other_arguments_or_nothing_to_read_stops_with_the_fix(tmp_path):
    source = tmp_path / "few.extxyz"
    rng = np.random.default_rng(2)
    ase.io.write(source, [crystal(i, rng) for i in range(3)])
    out = tmp_path / "out"
    batch.run_batch(str(source), out, chunk_size=2, n_workers=1, classify=False, progress=False)
    with pytest.raises(batch.BatchError, match="chunk_size=2 then, 3 now.*overwrite=True"):
        batch.run_batch(str(source), out, chunk_size=3, n_workers=1, classify=False, progress=False)
    again = batch.run_batch(str(source), out, chunk_size=2, n_workers=1, classify=False, progress=False)
    assert again["skipped"] == again["chunks"] == 2 and again["computed"] == 0
    with pytest.raises(FileNotFoundError, match="no such file"):
        batch.run_batch(str(tmp_path / "missing.extxyz"), tmp_path / "o2", classify=False)
    with pytest.raises(TypeError, match="not a mix"):
        batch.run_batch([str(source), crystal(0, rng)], tmp_path / "o3", classify=False)
    with pytest.raises(ValueError, match="nothing to do"):
        batch.run_batch(str(source), tmp_path / "o4", classify=False, fingerprints=False)


def test_a_resume_stops_when_an_input_or_a_model_changed(tmp_path, monkeypatch):
    """The manifest compared parameters, sources by size and date, and lists of Atoms by their count: a file
    rewritten to the same size, other Atoms of the same number, or a retrained model resumed silently, mixing two
    inputs or two models in one table. Now each stops, naming what changed."""
    from distributed import Client, LocalCluster

    rng = np.random.default_rng(4)
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path / "models"))
    models.save_model(models.build_model(seed=0), {"epochs": 0}, directory=tmp_path / "models")
    source = tmp_path / "few.extxyz"
    frames = [crystal(i, rng) for i in range(3)]
    ase.io.write(source, frames)
    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=40)
    client = Client(cluster)  # one cluster for every call (each would otherwise start its own)
    run = dict(chunk_size=2, address=client, n_mc=2, model="paper", progress=False)
    batch.run_batch(str(source), tmp_path / "out", **run)
    size = source.stat().st_size
    frames[1].positions[0] += 0.01
    ase.io.write(source, frames)
    assert source.stat().st_size == size  # the same number of bytes, other content
    with pytest.raises(batch.BatchError, match=r"input .*few.extxyz changed \(sha256"):
        batch.run_batch(str(source), tmp_path / "out", **run)
    batch.run_batch(str(source), tmp_path / "out", overwrite=True, **run)
    models.save_model(models.build_model(seed=1), {"epochs": 0}, directory=tmp_path / "models")  # retrained
    with pytest.raises(batch.BatchError, match="the paper model changed"):
        batch.run_batch(str(source), tmp_path / "out", **run)
    listed = tmp_path / "listed"
    batch.run_batch(frames, listed, classify=False, **{k: v for k, v in run.items() if k not in ("n_mc", "model")})
    other = [a.copy() for a in frames]
    other[0].positions[1] += 0.01
    with pytest.raises(batch.BatchError, match="input atoms changed"):
        batch.run_batch(other, listed, classify=False, **{k: v for k, v in run.items() if k not in ("n_mc", "model")})
    client.close()
    cluster.close()


def test_classifying_without_a_trained_model_stops_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_DATA_DIR", str(tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    source = tmp_path / "one.extxyz"
    ase.io.write(source, crystal(0, np.random.default_rng(0)))
    with pytest.raises(FileNotFoundError, match="run notebooks/03.*classify=False"):
        batch.run_batch(str(source), tmp_path / "out")
    assert not (tmp_path / "out").exists() or not batch.finished_chunks(tmp_path / "out")


def test_chunk_seeds_do_not_depend_on_the_worker_and_differ_between_chunks():
    assert batch.chunk_seed(3, 5) == batch.chunk_seed(3, 5)
    assert len({batch.chunk_seed(3, k) for k in range(100)}) == 100


def test_a_script_file_without_a_main_guard_runs_its_batch_once(tmp_path):
    """Dask's worker processes start from a fresh interpreter; they must not run the caller's script again."""
    source = tmp_path / "few.extxyz"
    ase.io.write(source, [crystal(i, np.random.default_rng(8)) for i in range(4)])
    script = tmp_path / "no_guard.py"
    script.write_text(textwrap.dedent(f"""
        from helpers.batch import run_batch
        print("STARTED", flush=True)
        summary = run_batch({str(source)!r}, {str(tmp_path / "out")!r}, chunk_size=2, n_workers=2, classify=False,
                            progress=False)
        print("DONE", summary["chunks"], flush=True)
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env=environment(), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("STARTED") == 1 and done.stdout.count("DONE 2") == 1, done.stdout


def test_the_command_line_runs_a_batch(tmp_path):
    source = tmp_path / "few.extxyz"
    ase.io.write(source, [crystal(i, np.random.default_rng(4)) for i in range(3)])
    done = subprocess.run([sys.executable, "-m", "helpers.batch", str(source), str(tmp_path / "out"),
                           "--no-classify", "--workers", "1", "--chunk-size", "2"],
                          capture_output=True, text=True, timeout=300, env=environment())
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["structures"] == 3
    assert batch.read_fingerprints(tmp_path / "out").shape == (3, 64, 64, 3)


def test_an_existing_cluster_is_used_and_the_callers_client_left_open(tmp_path):
    from distributed import Client, LocalCluster

    source = tmp_path / "few.extxyz"
    ase.io.write(source, [crystal(i, np.random.default_rng(9)) for i in range(5)])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        by_client = batch.run_batch(str(source), tmp_path / "a", chunk_size=2, address=client, classify=False,
                                    progress=False)
        assert client.status == "running" and by_client["workers"] == 1
        by_address = batch.run_batch(str(source), tmp_path / "b", chunk_size=2, address=cluster.scheduler_address,
                                     classify=False, progress=False)
        assert client.status == "running" and by_address["chunks"] == 3
    np.testing.assert_array_equal(fingerprints(tmp_path / "a"), fingerprints(tmp_path / "b"))
    assert batch.read_table(tmp_path / "a")["fingerprinted"].all()
