"""Fingerprint and classify large structure collections in chunks on Dask, resumably, into Parquet and .npy.

    from helpers.batch import run_batch, read_table, read_fingerprints
    run_batch("md_run.extxyz", "results/md_run")          # a LocalCluster on this machine's cores
    run_batch("materials.db", "results/db", address="tcp://scheduler:8786")   # an existing Dask cluster
    table = read_table("results/md_run")                  # pandas; or dask.dataframe.read_parquet(".../table")
    X = read_fingerprints("results/md_run")               # a lazy dask array (n, 64, 64, 3)

or from a shell: ``python -m helpers.batch md_run.extxyz results/md_run``.

**What it reads.** Anything ``ase.io.iread`` reads (every frame of a trajectory: extxyz, ASE .traj, a multi-model
file, ...), an ASE database (``.db``, also a ``postgresql://`` address), a folder of structure files (every file,
sorted by name, every frame of each), a list of any of these, or ``ase.Atoms`` objects (a list or a generator).
Trajectory frames are parsed here, in the client, and sent to the workers a chunk at a time; database rows and
files are read by the workers themselves.

**What it writes**, one chunk of ``chunk_size`` structures at a time, each file through a temporary name and a
rename (nothing is ever half-written):

* ``OUT/table/part-NNNNNN.parquet``: one row per structure, in the collection's order (``index``): ``source``,
  ``formula``, ``n_atoms``, the answer of :func:`helpers.classify.classify` (which network, predicted class, its
  probability, the uncertainties, ``p_<class>``), the database row's key-value pairs as JSON, and ``error``;
* ``OUT/fingerprints/part-NNNNNN.npy``: float32 (rows, 64, 64, 3), row for row the same structures, the
  fingerprint of each structure as given (:func:`helpers.fingerprint.diffraction_fingerprint`; NaN where the
  row has an error);
* ``OUT/batch.json``: what was asked (source, chunk size, model, seeds, fingerprint settings, package versions).

A chunk is finished when its Parquet file exists (written last). A rerun with the same arguments skips finished
chunks, so a run that was killed resumes where it stopped; a rerun with other arguments, or on a source that
changed, stops and says so. At most ``max_in_flight`` chunks are read and in the cluster at once, and no result
comes back to the client, so memory does not grow with the collection.

**Bad input at scale.** A file that cannot be read, a structure the fingerprint refuses (an unknown element, two
atoms on one site) or one without a lattice to align by gets an error row or the orientation-free model of
notebook 07 (``model="auto"``), and costs the other structures nothing. A trajectory whose frame cannot be parsed
ends with an error row naming that frame: ``ase.io.iread`` cannot read past it. A worker that dies mid-chunk
loses no finished chunk: Dask runs its chunk again elsewhere.

**Where it runs.** Dask's worker processes start from a fresh interpreter; while the cluster runs, the caller's
main module is hidden from them (:func:`helpers.parallel.without_main_module`), so this works the same from a
notebook, a script file, a script on standard input and ``python -c``. On a cluster (``address``, a
``dask_jobqueue.SLURMCluster`` or any ``distributed`` cluster or client) every worker needs this package
installed and ``OUT`` on a file system it shares with the client.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import pickle
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from ase import Atoms

from . import provenance
from .fingerprint import SHAPE, diffraction_fingerprint
from .parallel import default_n_jobs, without_main_module
from .structures import CLASSES

FORMAT_VERSION = 1
TABLE_DIR = "table"
FINGERPRINT_DIR = "fingerprints"
MANIFEST = "batch.json"
DB_SUFFIXES = (".db", ".sqlite", ".sqlite3")
WRITER = "helpers.batch"

#: Columns of the Parquet table and their Arrow types, the same in every chunk.
_STRING, _FLOAT, _INT = "string", "float64", "int64"
COLUMNS = ([("index", _INT), ("frame", _INT), ("source", _STRING), ("formula", _STRING), ("n_atoms", _INT),
            ("model", _STRING), ("classified_atoms", _INT), ("prepared", _STRING), ("n_orientations", _INT),
            ("predicted_class", _STRING), ("probability", _FLOAT), ("predictive_entropy", _FLOAT),
            ("mutual_information", _FLOAT), ("trust_threshold", _FLOAT), ("trusted", "bool"), ("verdict", _STRING)]
           + [(f"p_{c}", _FLOAT) for c in CLASSES]
           + [("fingerprinted", "bool"), ("key_value_pairs", _STRING), ("error", _STRING)])


class BatchError(RuntimeError):
    """A batch that cannot start or go on (the message names the fix)."""


# ---- the collection, as chunks -------------------------------------------------------------------
@dataclass
class Chunk:
    """``n`` consecutive structures of the collection, from ``index`` on. ``payload`` is what a worker needs to
    get them: ("atoms", [(source, Atoms or None, error)]), ("files", [paths]) or ("db", address, offset, limit)."""

    number: int
    index: int
    n: int
    payload: tuple


def _is_database(item) -> bool:
    text = str(item)
    return text.startswith(("postgresql://", "mysql://", "mariadb://")) or Path(text).suffix.lower() in DB_SUFFIXES


def _describe_source(item) -> dict:
    """What the manifest records of one source, to notice a source that changed between a run and its rerun."""
    text = str(item)
    if _is_database(item):
        import ase.db

        if "://" not in text and not Path(text).is_file():
            raise FileNotFoundError(f"{text}: no such database; check the path")
        if "://" not in text:  # a database file: its bytes are its identity
            with ase.db.connect(text) as db:
                rows = db.count()
            return {"kind": "database", "path": text, "rows": rows, "sha256": provenance.file_sha256(text)}
        with ase.db.connect(text) as db:  # a server: which rows, by their ids and unique ids
            ids = "\n".join(f"{row.id} {row.unique_id}" for row in db.select(columns=["id", "unique_id"]))
            return {"kind": "database", "path": text, "rows": db.count(),
                    "ids_sha256": hashlib.sha256(ids.encode()).hexdigest()}
    path = Path(text)
    if path.is_dir():
        files = _folder_files(path)
        content = hashlib.sha256()
        for name in files:
            content.update(f"{Path(name).name} {provenance.file_sha256(name)}\n".encode())
        return {"kind": "folder", "path": text, "files": len(files), "sha256": content.hexdigest()}
    if path.is_file():
        return {"kind": "file", "path": text, "bytes": path.stat().st_size, "sha256": provenance.file_sha256(path)}
    raise FileNotFoundError(f"{text}: no such file or folder; check the path")


def _describe_atoms(sources) -> dict:
    """What the manifest records of Atoms given in memory: their number and a hash of every structure (species,
    positions, cell, periodicity); a stream (a generator) cannot be read twice, so only that it was one."""
    if not isinstance(sources, list):
        return {"kind": "atoms", "count": "a stream"}
    digest = hashlib.sha256()
    for atoms in sources:
        for array in (atoms.numbers, atoms.positions, atoms.cell[:], atoms.pbc):
            digest.update(np.ascontiguousarray(array).tobytes())
    return {"kind": "atoms", "count": len(sources), "sha256": digest.hexdigest()}


def _folder_files(path: Path) -> list:
    return sorted(str(p) for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def _frames(path: str) -> Iterator[tuple]:
    """(frame, Atoms or None, error) for every frame of a file, read lazily by ``ase.io.iread``; a frame that
    cannot be parsed ends the file with an error row (iread cannot go past it)."""
    import ase.io

    i = 0
    try:
        for atoms in ase.io.iread(path, index=":"):
            yield i, atoms, None
            i += 1
    except Exception as exc:  # noqa: BLE001 - any parser error becomes the row's error
        where = "" if i == 0 else f" from frame {i} on"
        yield i, None, (f"{path}: ase.io.iread cannot read it{where} ({type(exc).__name__}: {exc}); pass a file in "
                        "a format ASE reads (CIF, POSCAR, extxyz, ...), or fix or remove that frame")
        return
    if i == 0:
        yield 0, None, f"{path}: ase.io.iread cannot read it (the file holds no structure); fix or remove the file"


def _named_frames(path: str) -> Iterator[tuple]:
    for i, atoms, error in _frames(path):
        yield f"{path}@{i}", i, atoms, error


def _batched(rows: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def normalise_sources(sources) -> tuple:
    """("paths", [path, ...]) or ("atoms", iterable of Atoms), with a clear error for anything else."""
    if isinstance(sources, (str, os.PathLike)):
        return "paths", [str(sources)]
    if isinstance(sources, Atoms):
        return "atoms", [sources]
    if isinstance(sources, (list, tuple)):
        if not sources:
            raise ValueError("nothing to do: no source given")
        if all(isinstance(s, (str, os.PathLike)) for s in sources):
            return "paths", [str(s) for s in sources]
        if all(isinstance(s, Atoms) for s in sources):
            return "atoms", list(sources)
        raise TypeError("pass either paths (files, databases, folders) or ase.Atoms objects, not a mix; read the "
                        "files with ase.io.read first, or write the Atoms to a file")
    if hasattr(sources, "__iter__"):
        return "atoms", sources
    raise TypeError(f"cannot read structures from a {type(sources).__name__}: pass paths or ase.Atoms objects")


def _source_batches(source: str, chunk_size: int) -> Iterator[tuple]:
    """(payload, number of items) for consecutive chunks of one path source (read lazily)."""
    if _is_database(source):
        import ase.db

        with ase.db.connect(source) as db:
            count = db.count()
        for start in range(0, count, chunk_size):
            n = min(chunk_size, count - start)
            yield ("db", source, start, n), n
    elif Path(source).is_dir():
        files = _folder_files(Path(source))
        for start in range(0, len(files), chunk_size):
            yield ("files", files[start: start + chunk_size]), len(files[start: start + chunk_size])
    else:
        for chunk in _batched(_named_frames(source), chunk_size):
            yield ("atoms", chunk), len(chunk)


def iter_chunks(kind: str, sources, chunk_size: int, skip=frozenset()) -> Iterator[Chunk]:
    """The collection as consecutive chunks; a chunk holds items of one source only. An item is a file's
    frame, a database row, a file of a folder (all its frames) or an Atoms object. Chunks whose number is in
    ``skip`` come with an empty payload: their files and database rows are not read at all (trajectory frames
    still are parsed, to count them)."""
    if kind == "atoms":
        def rows():
            for k, atoms in enumerate(sources):
                if isinstance(atoms, Atoms):
                    yield f"Atoms[{k}]", 0, atoms, None
                else:
                    yield f"item {k}", 0, None, (f"item {k} is a {type(atoms).__name__}, not ase.Atoms; read files "
                                                 "with ase.io.read first")
        groups = [((("atoms", chunk), len(chunk)) for chunk in _batched(rows(), chunk_size))]
    else:
        groups = [_source_batches(source, chunk_size) for source in sources]
    number, index = 0, 0
    for group in groups:
        for payload, n in group:
            yield Chunk(number, index, n, payload if number not in skip else ())
            number += 1
            index += n


# ---- one chunk, on a worker ------------------------------------------------------------------------
def _load(payload: tuple) -> list:
    """[(item, source, frame, Atoms or None, error, key-value pairs as JSON or None)] of one chunk; ``item`` counts
    from the chunk's first item (a file of a folder gives one row per frame, all with its item number)."""
    kind = payload[0]
    if kind == "atoms":
        return [(k, source, frame, atoms, error, None) for k, (source, frame, atoms, error) in enumerate(payload[1])]
    if kind == "files":
        rows = []
        for k, path in enumerate(payload[1]):
            frames = list(_frames(path))
            for frame, atoms, error in frames:
                rows.append((k, path if len(frames) == 1 else f"{path}@{frame}", frame, atoms, error, None))
        return rows
    if kind == "db":
        import ase.db

        _, address, offset, limit = payload
        rows = []
        with ase.db.connect(address) as db:
            for k, row in enumerate(db.select(offset=offset, limit=limit, sort="id")):
                source = f"{address}:id={row.id}"
                pairs = json.dumps(dict(row.key_value_pairs), sort_keys=True, default=str)
                try:
                    rows.append((k, source, 0, row.toatoms(), None, pairs))
                except Exception as exc:  # noqa: BLE001 - a broken row is that row's error
                    rows.append((k, source, 0, None, f"{source}: cannot be read ({type(exc).__name__}: {exc})", pairs))
        return rows
    raise ValueError(f"unknown chunk payload {kind!r}")


def chunk_seed(seed: int, number: int) -> int:
    """The dropout and view seed of chunk ``number``: the same whichever worker runs it, whenever."""
    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0])


def _classify_rows(structures: list, options: dict, seed: int) -> list:
    """classify's row for each structure; a structure it cannot take gets its own error."""
    import logging

    from .classify import classify

    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notes: one per chunk size, harmless
    kwargs = dict(model=options["model"], n_mc=options["n_mc"], seed=seed, target_atoms=options["target_atoms"],
                  n_orientations=options.get("n_orientations"),
                  allow_multiple_elements=options["allow_multiple_elements"], n_jobs=1, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the error column says it
        try:
            return classify(structures, **kwargs).to_dict("records")
        except (ValueError, FileNotFoundError, provenance.StaleDataError):  # none could be: each one's reason
            rows = []
            for atoms in structures:
                try:
                    rows.append(classify([atoms], **kwargs).to_dict("records")[0])
                except (ValueError, FileNotFoundError, provenance.StaleDataError) as exc:
                    rows.append({"error": str(exc).replace("no structure could be classified:\n", "")})
            return rows


def _schema():
    import pyarrow as pa

    types = {_STRING: pa.string(), _FLOAT: pa.float64(), _INT: pa.int64(), "bool": pa.bool_()}
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS])


def _cell(value, kind: str):
    """A table value as its column's type; None for missing (NaN from pandas included)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == _STRING:
        return value if isinstance(value, str) else None
    return {_FLOAT: float, _INT: int, "bool": bool}[kind](value)


def part_name(number: int, suffix: str) -> str:
    return f"part-{number:06d}{suffix}"


def _take_answer(row: dict, answer: dict, source: str) -> None:
    """Put classify's answer for one structure into its table row: its atom count as ``classified_atoms``, its
    error (which names the formula) in the row's words (which name the source), unless reading already failed."""
    answer["classified_atoms"] = answer.pop("n_atoms", None)
    own_error = answer.pop("error", None)
    own_error = own_error if isinstance(own_error, str) and own_error else None
    answer.pop("source", None)
    answer.pop("formula", None)
    row.update(answer)
    if own_error and not row["error"]:
        row["error"] = f"{source}: {own_error.split(': ', 1)[-1]}"


def process_chunk(chunk: Chunk, out: str, options: dict) -> dict:
    """Worker: read, fingerprint and classify one chunk; write its fingerprints, then its table (the mark that
    the chunk is finished), each atomically. Returns a small summary, never the results."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    out = Path(out)
    rows = _load(chunk.payload)
    if len({row[0] for row in rows}) != chunk.n:
        raise BatchError(f"chunk {chunk.number}: expected {chunk.n} structures, read {len(rows)}; the source "
                         "changed while the batch ran")
    table = [{"index": chunk.index + item, "frame": frame, "source": source,
              "n_atoms": None if atoms is None else len(atoms),
              "formula": None if atoms is None else atoms.get_chemical_formula(),
              "fingerprinted": False, "key_value_pairs": pairs, "error": error}
             for item, source, frame, atoms, error, pairs in rows]
    fingerprints = np.full((len(rows),) + SHAPE, np.nan, dtype=np.float32) if options["fingerprints"] else None
    with threadpool_limits(limits=1, user_api="blas"):
        if fingerprints is not None:
            for k, row in enumerate(rows):
                if row[3] is None:
                    continue
                try:
                    fingerprints[k] = diffraction_fingerprint(row[3])
                    table[k]["fingerprinted"] = True
                except (ValueError, TypeError) as exc:
                    table[k]["error"] = f"{row[1]}: {exc}"
        todo = [k for k, row in enumerate(rows) if row[3] is not None] if options["classify"] else []
        if todo:
            answers = _classify_rows([rows[k][3] for k in todo], options, chunk_seed(options["seed"], chunk.number))
            for k, answer in zip(todo, answers):
                _take_answer(table[k], dict(answer), rows[k][1])
    if fingerprints is not None:
        # the temporary name ends in .npy, so np.save writes it as named
        provenance.write_atomically(out / FINGERPRINT_DIR / part_name(chunk.number, ".npy"),
                                    lambda tmp: np.save(tmp, fingerprints))
    columns = {name: [_cell(row.get(name), kind) for row in table] for name, kind in COLUMNS}
    arrow = pa.table(columns, schema=_schema())
    provenance.write_atomically(out / TABLE_DIR / part_name(chunk.number, ".parquet"),
                                lambda tmp: pq.write_table(arrow, tmp))
    return {"chunk": chunk.number, "rows": len(table), "errors": sum(bool(r["error"]) for r in table),
            "seconds": time.perf_counter() - start, "worker_pid": os.getpid()}


def process_pickled_chunk(pickled: bytes, out: str, options: dict) -> dict:
    """:func:`process_chunk` of a chunk pickled by the client."""
    return process_chunk(pickle.loads(pickled), out, options)


# ---- the client ------------------------------------------------------------------------------------
def finished_chunks(out) -> set:
    """Numbers of the chunks whose table is written."""
    folder = Path(out) / TABLE_DIR
    if not folder.is_dir():
        return set()
    return {int(p.name[5:11]) for p in folder.glob("part-*.parquet")}


def _models_used(options: dict) -> dict:
    """SHA-256 of every model the batch may classify with (by kind; None for one not trained), or {} when it
    does not classify: a resumed batch must not answer half its chunks with one model and half with another."""
    from .models import MODEL_KINDS, check_saved_model

    if not options["classify"]:
        return {}
    out = {}
    for kind in (MODEL_KINDS if options["model"] == "auto" else [options["model"]]):
        try:
            out[kind] = check_saved_model(kind=kind)[1]["model_sha256"]
        except FileNotFoundError:
            out[kind] = None
    return out


def _manifest(kind: str, sources, options: dict) -> dict:
    described = [_describe_source(s) for s in sources] if kind == "paths" else [_describe_atoms(sources)]
    return provenance.record(WRITER, dict(options), fingerprint=True, kind="batch", batch_format=FORMAT_VERSION,
                             sources=described, models=_models_used(options))


def _plain(value):
    return json.loads(json.dumps(value, default=str))


def _same_request(old: dict, new: dict) -> list:
    """What differs between the request recorded in a manifest on disk and this call, in words (empty: the same
    request): arguments, fingerprint settings, the models' bytes, and every input's identity (its bytes, a
    database's rows, a folder's files, the Atoms given)."""
    differ = []
    then, now = _plain(old.get("params")) or {}, _plain(new.get("params")) or {}
    differ += [f"{k}={then.get(k)!r} then, {now.get(k)!r} now" for k in sorted(set(then) | set(now))
               if then.get(k) != now.get(k)]
    if _plain(old.get("fingerprint")) != _plain(new.get("fingerprint")):
        differ.append("other fingerprint settings")
    if old.get("batch_format") != new.get("batch_format"):
        differ.append(f"batch format {old.get('batch_format')} then, {new.get('batch_format')} now")
    then, now = _plain(old.get("models")) or {}, _plain(new.get("models")) or {}
    differ += [f"the {k} model changed (SHA-256 {str(then.get(k))[:12]} then, {str(now.get(k))[:12]} now)"
               for k in sorted(set(then) | set(now)) if then.get(k) != now.get(k)]
    then, now = _plain(old.get("sources")) or [], _plain(new.get("sources")) or []
    if [s.get("path") for s in then] != [s.get("path") for s in now]:
        differ.append(f"other inputs ({[s.get('path', s.get('kind')) for s in then]} then, "
                      f"{[s.get('path', s.get('kind')) for s in now]} now)")
    else:
        for a, b in zip(then, now):
            changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            if changed:
                differ.append(f"input {a.get('path', a.get('kind'))} changed ("
                              + ", ".join(f"{k} {a.get(k)} then, {b.get(k)} now" for k in changed) + ")")
    return differ


def _prepare_output(out: Path, manifest: dict, overwrite: bool) -> None:
    path = out / MANIFEST
    if path.exists() and not overwrite:
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = {}
        differ = _same_request(old, manifest)
        if differ:
            raise BatchError(f"{out} holds a batch made from another request: {'; '.join(differ)} (see {path}); "
                             "resume it with the same arguments, inputs and models, pass another output folder, "
                             "or overwrite=True (--overwrite) to start again")
    if overwrite:
        for folder in (TABLE_DIR, FINGERPRINT_DIR):
            for p in (out / folder).glob("part-*"):
                p.unlink()
    for folder in (TABLE_DIR, FINGERPRINT_DIR):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for p in (out / folder).glob(".tmp-*"):  # left by a worker killed while writing
            p.unlink(missing_ok=True)
    provenance.write_text(path, json.dumps(manifest, indent=1, default=str))


def _client(address, n_workers):
    """(client, cluster we started or None, whether the client is ours to close)."""
    from distributed import Client, LocalCluster

    if address is None:
        env = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1",
               "TF_CPP_MIN_LOG_LEVEL": "2", "SPGLIB_WARNING": "OFF"}
        # dashboard_address=":0": the scheduler's HTTP server takes a free port; with None it asks for 8787 and warns
        # into the notebook's output whenever another cluster (another notebook, a test) holds that port
        cluster = LocalCluster(n_workers=int(n_workers or default_n_jobs()), threads_per_worker=1, processes=True,
                               dashboard_address=":0", scheduler_kwargs={"dashboard": False}, env=env,
                               silence_logs=40)
        return Client(cluster), cluster, True
    if isinstance(address, Client):
        return address, None, False  # the caller's client: left open
    return Client(address), None, True


def _check_models(model: str) -> None:
    """Stop before any work when the model(s) to classify with are missing or stale (a batch of error rows helps
    no one). With ``model="auto"`` a missing orientation-free model only costs the structures that need it."""
    from .models import MODEL_KINDS, check_kind, check_saved_model

    kinds = list(MODEL_KINDS) if model == "auto" else [check_kind(model)]
    missing = []
    for kind in kinds:
        try:
            check_saved_model(kind=kind)
        except FileNotFoundError as exc:
            missing.append(exc)
    if len(missing) == len(kinds):
        raise FileNotFoundError(f"{missing[0]} Or pass classify=False (--no-classify) for fingerprints only.")


def _run_chunks(client, chunks, out: Path, options: dict, done: set, summary: dict, limit: int,
                progress: bool) -> None:
    """Send each of ``chunks`` not in ``done`` to a worker, at most ``limit`` in flight, and count what comes back
    (and what was done before) into ``summary``. A chunk that failed stops the batch here, with its error."""
    from distributed import wait
    from tqdm.auto import tqdm

    running = set()
    bar = tqdm(desc="batch", unit="structure", disable=not progress)

    def collect(futures):
        for future in futures:
            result = future.result()
            summary["errors"] += result["errors"]
            summary["computed"] += 1
            summary["worker_seconds"] += result["seconds"]
            bar.update(result["rows"])

    for chunk in chunks:
        summary["chunks"] += 1
        summary["structures"] += chunk.n
        if chunk.number in done:
            summary["skipped"] += 1
            bar.update(chunk.n)
            continue
        # The chunk's structures go to a worker as data (scatter), not inside the task: the scheduler keeps what it
        # deserialises of a task's graph for the rest of the run (measured by make bench-scale), which made its
        # memory grow with the collection.
        data = client.scatter(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL), hash=False)
        running.add(client.submit(process_pickled_chunk, data, str(out), options, pure=False))
        del data
        if len(running) >= limit:
            finished, running = wait(running, return_when="FIRST_COMPLETED")
            collect(finished)
    finished, _ = wait(running)
    collect(finished)
    bar.close()


def run_batch(sources, out, chunk_size: int = 256, address=None, n_workers: int | None = None,
              classify: bool = True, fingerprints: bool = True, model: str = "auto", n_mc: int = 50, seed: int = 0,
              n_orientations: int | None = None, target_atoms: int | None = None,
              allow_multiple_elements: bool = False,
              max_in_flight: int | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Fingerprint and classify a collection chunk by chunk on Dask, resuming a batch begun in ``out``.

    Parameters
    ----------
    sources : path, ase.Atoms, iterable of ase.Atoms, or a list of paths
        Trajectory or structure files (anything ``ase.io.iread`` reads), ASE databases (``.db`` or an address),
        folders of structure files; or Atoms objects (module docstring).
    out : path
        Output folder (module docstring). A rerun with the same arguments skips the chunks already written.
    chunk_size : int
        Structures per chunk: per task, per file written, and what a kill can lose at most per worker.
    address : str, distributed.Client or cluster, optional
        An existing Dask cluster (its scheduler's address, a client, or a cluster object such as
        ``dask_jobqueue.SLURMCluster``). Default: a ``LocalCluster`` of ``n_workers`` processes, one thread each.
    n_workers : int, optional
        Workers of the local cluster (default: every core).
    classify, fingerprints : bool
        Write the classification table columns / the fingerprints.
    model, n_mc, n_orientations, target_atoms, allow_multiple_elements
        As for :func:`helpers.classify.classify`. ``seed`` gives each chunk its seed (:func:`chunk_seed`).
    max_in_flight : int, optional
        Chunks read and queued at once (default: twice the workers); bounds the memory.
    overwrite : bool
        Start again instead of resuming.
    progress : bool
        A progress bar over structures.

    Returns
    -------
    dict
        ``structures`` (in the collection), ``errors``, ``chunks``, ``skipped`` (finished before this call),
        ``computed``, ``seconds`` (wall clock), ``worker_seconds`` (the computed chunks' time on their workers),
        ``workers``, ``out``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if not classify and not fingerprints:
        raise ValueError("nothing to do: classify=False and fingerprints=False")
    kind, sources = normalise_sources(sources)
    if classify:
        _check_models(model)
    options = {"chunk_size": int(chunk_size), "classify": bool(classify), "fingerprints": bool(fingerprints),
               "model": model, "n_mc": int(n_mc), "seed": int(seed), "n_orientations": n_orientations,
               "target_atoms": target_atoms, "allow_multiple_elements": bool(allow_multiple_elements)}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _prepare_output(out, _manifest(kind, sources, options), overwrite)
    done = finished_chunks(out)
    started = time.perf_counter()
    summary = {"structures": 0, "errors": 0, "chunks": 0, "skipped": 0, "computed": 0, "worker_seconds": 0.0,
               "out": str(out)}
    with without_main_module():
        client, cluster, own_client = _client(address, n_workers)
        try:
            summary["workers"] = workers = len(client.nthreads()) or 1
            _run_chunks(client, iter_chunks(kind, sources, int(chunk_size), skip=done), out, options, done, summary,
                        int(max_in_flight or 2 * workers), progress)
        finally:
            if own_client:
                client.close()
            if cluster is not None:
                cluster.close()
    if summary["skipped"]:
        summary["errors"] = int(read_table(out)["error"].notna().sum())
    summary["seconds"] = time.perf_counter() - started
    return summary


# ---- reading the results ---------------------------------------------------------------------------
def read_table(out):
    """The classification table of a batch as one pandas DataFrame, in the collection's order."""
    import pandas as pd

    folder = Path(out) / TABLE_DIR
    parts = sorted(folder.glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no results in {folder}: run run_batch first")
    table = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    return table.sort_values(["index", "frame"], ignore_index=True)


def read_fingerprints(out):
    """The fingerprints of a batch as a lazy dask array (n, 64, 64, 3), row for row the table of
    :func:`read_table` (NaN where a row has an error); ``.compute()`` or slices load them."""
    import dask.array as da

    folder = Path(out) / FINGERPRINT_DIR
    parts = sorted(folder.glob("part-*.npy"))
    if not parts:
        raise FileNotFoundError(f"no fingerprints in {folder}: run run_batch with fingerprints=True first")
    return da.concatenate([da.from_array(np.load(p, mmap_mode="r"), chunks=(256,) + SHAPE) for p in parts])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers.batch", description=__doc__.split("\n\n")[0],
                                     epilog="Rerun the same command to resume after an interruption.")
    parser.add_argument("sources", nargs="+", help="trajectory/structure files, ASE databases, folders")
    parser.add_argument("out", help="output folder")
    parser.add_argument("--chunk-size", type=int, default=256)
    parser.add_argument("--address", help="scheduler address of an existing Dask cluster")
    parser.add_argument("--workers", type=int, help="workers of the local cluster (default: every core)")
    parser.add_argument("--no-classify", action="store_true", help="fingerprints only")
    parser.add_argument("--no-fingerprints", action="store_true", help="classification table only")
    parser.add_argument("--model", default="auto", choices=["auto", "paper", "any_orientation"])
    parser.add_argument("--n-mc", type=int, default=50, help="Monte-Carlo dropout passes")
    parser.add_argument("--n-orientations", type=int, help="views per structure for the orientation-free model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="start again instead of resuming")
    args = parser.parse_args(argv)
    summary = run_batch(args.sources, args.out, chunk_size=args.chunk_size, address=args.address,
                        n_workers=args.workers, classify=not args.no_classify,
                        fingerprints=not args.no_fingerprints, model=args.model, n_mc=args.n_mc, seed=args.seed,
                        n_orientations=args.n_orientations,
                        overwrite=args.overwrite)
    print(json.dumps(summary))


if __name__ == "__main__":
    from helpers import batch  # the importable module, not __main__: workers unpickle its classes by name

    batch.main()
