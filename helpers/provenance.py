"""Where every data file of the series comes from, and the checks that it is still current.

Every file a notebook writes and another notebook (or :func:`helpers.classify.classify`) reads goes through
this module:

* ``.npz`` arrays (notebooks 01, 02, 05, 07) with :func:`save_npz` / :func:`load_npz`,
* ``.json`` results (notebooks 03, 05, 07) with :func:`save_json` / :func:`load_json`,
* the saved Keras models (03, 07) through :mod:`helpers.models`, which uses the same checks.

Each file carries a provenance record: the format version, the notebook that wrote it, the data parameters,
the fingerprint settings where fingerprints went into it, and the SHA-256 of the files it was computed from.
Loading checks all of them. A missing, corrupt or stale file stops with :class:`StaleDataError`, whose message
names the notebook to rerun (and, for a parameter, the papermill ``-p`` option that matches).

Writing is atomic (a temporary file in the same folder, then a rename) and deterministic (same content, same
bytes), so an interrupted run never leaves half a file and a rerun with the same seeds gives identical files.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import zipfile
from pathlib import Path

import numpy as np

#: Version of the layout of every file this module writes; files of another version are refused.
FORMAT_VERSION = 2

NOTEBOOK_01 = "notebooks/01_data_generation.ipynb"
NOTEBOOK_02 = "notebooks/02_diffraction_fingerprints.ipynb"
NOTEBOOK_03 = "notebooks/03_cnn_training.ipynb"
NOTEBOOK_05 = "notebooks/05_dimensionality_reduction_clustering.ipynb"
NOTEBOOK_07 = "notebooks/07_any_orientation.ipynb"
NOTEBOOK_08 = "notebooks/08_local_structure.ipynb"


class StaleDataError(RuntimeError):
    """A data file is missing, unreadable, of another format, made with other parameters, or made from inputs
    that have changed since. The message names the notebook to rerun."""


# ---- hashing and versions ------------------------------------------------------------------------
_HASHES: dict = {}


def file_sha256(path) -> str:
    """SHA-256 of a file's bytes (hex). Remembered per (path, size, modification time) within a process, so
    checking the same large input twice hashes it once."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def package_versions() -> dict:
    """Versions of Python and of the packages that decide the data's content."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "ase", "spglib", "xraydb", "crystal-fingerprints"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def record(notebook: str, params: dict | None = None, inputs=(), fingerprint: bool = False, **extra) -> dict:
    """The provenance record of a file that ``notebook`` writes.

    Parameters
    ----------
    notebook : str
        The notebook that writes the file (named in every error about it).
    params : dict, optional
        The data parameters it was made with (checked by :func:`check_params`).
    inputs : iterable of path
        Files it was computed from; their SHA-256 is stored and checked on loading (:func:`check_inputs`).
    fingerprint : bool
        Whether fingerprints went into it: then today's ``FINGERPRINT_PARAMS`` are stored and checked.
    **extra
        More entries for the record.
    """
    out = {"format_version": FORMAT_VERSION, "notebook": notebook, "params": dict(params or {}),
           "inputs": {Path(p).name: file_sha256(p) for p in inputs}, "versions": package_versions(), **extra}
    if fingerprint:
        from .fingerprint import FINGERPRINT_PARAMS

        out["fingerprint"] = json.loads(json.dumps(FINGERPRINT_PARAMS))
    return out


# ---- checks -----------------------------------------------------------------------------------
def require(path, notebook: str) -> Path:
    """``path`` if it exists; otherwise a FileNotFoundError that says which notebook writes it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run {notebook} first (`make run` runs the whole series; "
                                f"`papermill {notebook} ...` runs one notebook).")
    return path


def check_format(meta: dict, path, notebook: str) -> None:
    """Stop when ``path`` was written in another layout than this version of the project reads."""
    have = meta.get("format_version")
    if have != FORMAT_VERSION:
        raise StaleDataError(f"{path} is in file format {have!r}, this version of helpers reads format "
                             f"{FORMAT_VERSION}; rerun {notebook}.")


def check_params(meta: dict, expect: dict, path, notebook: str) -> None:
    """Stop when ``path`` was made with other parameters than ``expect`` (a float compares with ``np.isclose``)."""
    made = meta.get("params", {})
    for key, wanted in (expect or {}).items():
        have = made.get(key, "<missing>")
        same = (np.isclose(have, wanted) if isinstance(wanted, float) and isinstance(have, (int, float))
                else have == wanted)
        if not same:
            raise StaleDataError(
                f"{path} was made with {key}={have!r}, but this notebook asks for {key}={wanted!r}. "
                f"Rerun {notebook} with `-p {key} {wanted}` (papermill), or set {key} = {have!r} in "
                f"this notebook's parameters cell.")


def check_fingerprint_params(made: dict | None, path, notebook: str) -> None:
    """Stop when ``path`` holds fingerprints (or something computed from them) made with other settings than
    this version of :mod:`helpers.fingerprint` uses (``FINGERPRINT_PARAMS``), naming what differs."""
    from .fingerprint import FINGERPRINT_PARAMS

    current = json.loads(json.dumps(FINGERPRINT_PARAMS))
    made = made or {}
    if made != current:
        changed = sorted(k for k in set(made) | set(current) if made.get(k) != current.get(k))
        detail = "; ".join(f"{k}: {made.get(k, '<missing>')!r} there, {current.get(k, '<missing>')!r} now"
                           for k in changed)
        raise StaleDataError(f"{path} was made with other fingerprint settings than this version of "
                             f"helpers.fingerprint uses ({detail}); rerun {notebook}.")


def check_inputs(meta: dict, path, notebook: str) -> None:
    """Stop when a file that ``path`` was computed from has changed since (its SHA-256 differs). Inputs that are
    no longer there are not checked: a model copied elsewhere stays usable without its training data."""
    folder = Path(path).parent
    for name, sha in (meta.get("inputs") or {}).items():
        source = folder / name
        if source.exists() and file_sha256(source) != sha:
            raise StaleDataError(f"{path} was computed from an earlier {name}, which has been rewritten since; "
                                 f"rerun {notebook}.")


def check(meta: dict, path, notebook: str, expect: dict | None = None) -> dict:
    """All checks of a loaded provenance record (format, parameters, fingerprint settings, inputs); returns it."""
    check_format(meta, path, notebook)
    check_params(meta, expect or {}, path, notebook)
    if "fingerprint" in meta:
        check_fingerprint_params(meta["fingerprint"], path, notebook)
    check_inputs(meta, path, notebook)
    return meta


# ---- content signature -----------------------------------------------------------------------
def content_signature(X, exact: dict, n_rows: int = 64, n_directions: int = 4, chunk: int = 1024) -> dict:
    """What a set of fingerprints holds, in a form that another CPU can check: two machines make the same data set to
    within the last bits of a float (their vector units round differently), so a SHA-256 of the file differs while
    the content is the same.

    ``exact``: arrays that must be equal exactly (labels, elements, prototypes), kept as the SHA-256 of their values.
    ``X``: every row projected on ``n_directions`` fixed random directions; kept are the sum and the sum of squares
    of each projection over all rows and the projections of ``n_rows`` evenly spaced rows (float64). Compare with
    :func:`same_content`."""
    X = np.asarray(X)
    flat = X.reshape(len(X), -1)
    R = np.random.default_rng(20181017).standard_normal((flat.shape[1], n_directions))
    total, squares = np.zeros(n_directions), np.zeros(n_directions)
    picked = np.unique(np.linspace(0, max(len(X) - 1, 0), min(n_rows, len(X))).astype(int))
    rows = np.zeros((len(picked), n_directions))
    for start in range(0, len(X), chunk):
        P = flat[start:start + chunk].astype(np.float64) @ R
        total += P.sum(axis=0)
        squares += (P * P).sum(axis=0)
        inside = (picked >= start) & (picked < start + len(P))
        rows[inside] = P[picked[inside] - start]
    digest = {}
    for name, values in sorted(exact.items()):
        values = np.asarray(values)
        digest[name] = hashlib.sha256((values.astype(str) if values.dtype.kind in "OUS" else values.astype(np.int64))
                                      .tobytes()).hexdigest()
    return {"n": int(len(X)), "shape": list(X.shape[1:]), "exact": digest, "sum": total.tolist(),
            "sum_of_squares": squares.tolist(), "rows": rows.tolist()}


def same_content(made: dict | None, here: dict, rtol: float = 1e-6, atol: float = 1e-4) -> str | None:
    """None when two :func:`content_signature` records describe the same data (the exact parts equal, the
    projections equal to ``rtol``/``atol``: rounding in the last bits moves them by about 1e-6); otherwise what
    differs, in words."""
    if not made:
        return "it records no content signature"
    if made.get("n") != here["n"] or made.get("shape") != here["shape"]:
        return f"{made.get('n')} rows of shape {made.get('shape')} there, {here['n']} of shape {here['shape']} here"
    differ = sorted(k for k in set(made.get("exact", {})) | set(here["exact"])
                    if made.get("exact", {}).get(k) != here["exact"].get(k))
    if differ:
        return f"other {', '.join(differ)}"
    for key in ("sum", "sum_of_squares", "rows"):
        if not np.allclose(np.asarray(made[key]), np.asarray(here[key]), rtol=rtol, atol=atol):
            return "other fingerprint values"
    return None


# ---- atomic writing -----------------------------------------------------------------------------
def temporary_path(path) -> Path:
    """A hidden temporary name beside ``path`` (same folder, so the final rename is atomic), same suffix."""
    path = Path(path)
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def write_atomically(path, write) -> Path:
    """``write(temporary path)``, then the temporary file renamed to ``path``: a reader sees the whole file or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    return write_atomically(path, lambda tmp: tmp.write_text(text))


def jsonable(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, Path):
        return str(v)
    raise TypeError(f"cannot store {type(v).__name__} in JSON")


# ---- .npz ---------------------------------------------------------------------------------------
def save_npz(path, arrays: dict, meta: dict) -> Path:
    """Write ``arrays`` and the JSON ``meta`` (a :func:`record`, possibly with more keys) to ``path`` (.npz),
    atomically; the same content gives identical bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    meta = {"format_version": FORMAT_VERSION, **meta}
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            items = dict(arrays, meta=np.array(json.dumps(meta, sort_keys=True, default=jsonable)))
            for name, value in items.items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                with zf.open(info, "w", force_zip64=True) as fh:
                    np.lib.format.write_array(fh, np.asanyarray(value), allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_npz(path, notebook: str, expect: dict | None = None) -> tuple[dict, dict]:
    """``(arrays, meta)`` of a file written by :func:`save_npz`, after every check of :func:`check`.
    A missing file gives FileNotFoundError, an unreadable one StaleDataError; both name ``notebook``."""
    path = require(path, notebook)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "meta"}
            meta = json.loads(str(data["meta"]))
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as exc:
        raise StaleDataError(f"{path} cannot be read ({type(exc).__name__}: {exc}); it is damaged or was not "
                             f"written by this project. Delete it and rerun {notebook}.") from exc
    return arrays, check(meta, path, notebook, expect)


# ---- .json --------------------------------------------------------------------------------------
def save_json(path, data: dict, meta: dict) -> Path:
    """Write ``data`` with its provenance record ``meta`` (under the key ``"provenance"``) to ``path``,
    atomically."""
    if "provenance" in data:
        raise ValueError("'provenance' is reserved for the record; rename that entry of the data")
    body = {"provenance": {"format_version": FORMAT_VERSION, **meta}, **data}
    return write_text(path, json.dumps(body, indent=1, default=jsonable))


def load_json(path, notebook: str, expect: dict | None = None) -> dict:
    """What :func:`save_json` wrote to ``path`` (the record under ``"provenance"``), after every check of
    :func:`check`; errors name ``notebook``."""
    path = require(path, notebook)
    try:
        body = json.loads(Path(path).read_text())
        meta = body["provenance"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise StaleDataError(f"{path} cannot be read ({type(exc).__name__}: {exc}); it is damaged, was cut short, "
                             f"or was written by an older version. Rerun {notebook}.") from exc
    check(meta, path, notebook, expect)
    return body
