"""A map of local structure: windows slid through a large structure, each classified as a finite fragment.

This follows ARISE (Leitherer, Ziletti and Ghiringhelli, Nat. Commun. 2021), with notebook 07's orientation-free
network in place of its Bayesian network:

1. **Windows.** Centres on a regular grid through the cell (periodic) or the atoms' bounding box (finite), ``stride``
   nearest-neighbour distances apart. A window is the ``window_atoms`` atoms nearest its centre (periodic images
   included): a sphere cut from the structure, the form of 07's training clusters (its 256 atoms nearest the
   centre of a turned crystal). Its radius follows the local density, so a window holds the same number of atoms
   in a dense and in an open phase.
2. **Each window classified** as a non-periodic fragment (no cell): its diffraction fingerprint (scaled by its
   own nearest-neighbour distance, so two phases of different density are each seen at their own scale) seen from
   ``n_views`` random orientations (a different draw for every window: a grain is then seen from many sides by its
   many windows), the network's dense features once, and ``n_mc`` Monte-Carlo dropout passes. Per window: the
   mean class probabilities, the predictive entropy and the mutual information (nats) of those passes and views.
3. **Per atom**, the windows that contain the atom are averaged with Gaussian weights exp(-d² / 2 s²) of the
   atom's distance d from the window's centre, with s half the window's radius by default (windows centred near the atom
   count most; ``weight_width`` sets s): ``local_probabilities`` (the weighted mean of the windows' mean probabilities), ``local_class``
   (its arg max), ``local_probability`` (its maximum), ``local_entropy`` (its entropy), ``local_mutual_information``
   (the weighted mean of the windows' mutual information) and ``local_windows`` (how many windows hold the atom).

Windows go in chunks to Dask workers (a ``LocalCluster`` on this machine, or any cluster by its address), each of
which loads the network once; a chunk returns per-atom sums only, so memory does not grow with the number of
windows. With ``out``, every finished chunk is written there (temporary file, then renamed) and a rerun with the
same arguments reads it back instead of computing it: a map killed half way resumes.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from ase import Atoms

DEFAULT_WINDOW_ATOMS = 256   # atoms per window: the size of 07's training clusters
DEFAULT_STRIDE = 1.5         # window centres this many nearest-neighbour distances apart (ARISE: 4 Å ≈ 1.6 NN in Cu)
DEFAULT_VIEWS = 1            # orientations per window (each window has its own; an atom sees tens of windows)
DEFAULT_MC = 10              # dropout passes per window
DEFAULT_CHUNK = 256          # windows per Dask task
FORMAT_VERSION = 1
DEFAULT_WEIGHT_WIDTH = 0.5   # Gaussian width s of the per-atom weights, as a fraction of the window's radius
ARRAYS = ("local_class", "local_probability", "local_entropy", "local_mutual_information", "local_windows",
          "local_probabilities")


# ---- geometry ----------------------------------------------------------------------------------
def check_atoms(atoms) -> Atoms:
    """The structure as ``ase.Atoms``, or a clear error."""
    if not isinstance(atoms, Atoms):
        raise TypeError(f"structure_map takes an ase.Atoms (read a file with ase.io.read), got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise ValueError("the structure has no atoms: pass a structure with at least a few hundred atoms")
    pbc = np.asarray(atoms.pbc)
    if pbc.any() and not pbc.all():
        raise ValueError(f"periodic along some directions only (pbc={pbc.tolist()}): a slab or a wire. Map a "
                         "bulk sample (pbc all True) or a finite one (pbc all False, e.g. atoms.pbc = False)")
    if not np.all(np.isfinite(atoms.positions)):
        raise ValueError("some positions are not finite (nan or inf): fix or remove those atoms")
    return atoms


def nearest_neighbour_distance(atoms: Atoms) -> float:
    """Median distance of an atom to its nearest neighbour (Å), periodic images included: the length unit of the
    stride (a median, so vacancies, thermal motion and a liquid pocket hardly move it)."""
    from .neighbours import _cell_or_none, nearest_neighbour_distances

    return float(np.median(nearest_neighbour_distances(atoms.positions, _cell_or_none(atoms))))


def window_centres(atoms: Atoms, stride: float) -> np.ndarray:
    """Window centres (m, 3) in Å, ``stride`` Å apart (at most) along each cell vector of a periodic structure, or
    on a cubic grid through the bounding box of a finite one (only the centres with an atom within a stride)."""
    from .neighbours import is_periodic, kd_tree

    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride!r}")
    if is_periodic(atoms):
        cell = np.asarray(atoms.cell[:], dtype=np.float64)
        n = np.maximum(1, np.ceil(np.linalg.norm(cell, axis=1) / stride).astype(int))
        grid = np.stack(np.meshgrid(*[(np.arange(k) + 0.5) / k for k in n], indexing="ij"), -1).reshape(-1, 3)
        return grid @ cell
    lo, hi = atoms.positions.min(axis=0), atoms.positions.max(axis=0)
    n = np.maximum(1, np.ceil((hi - lo) / stride).astype(int))
    axes = [lo[i] + (np.arange(n[i]) + 0.5) * (hi[i] - lo[i]) / n[i] for i in range(3)]
    centres = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    d, _ = kd_tree(atoms.positions).query(centres, k=1)
    return centres[d <= stride]


def _search_space(atoms: Atoms, reach: float) -> tuple:
    """(positions, owners): the atoms and, for a periodic structure, their images within ``reach`` of the cell."""
    from .neighbours import is_periodic, periodic_images

    if not is_periodic(atoms):
        return np.asarray(atoms.positions, dtype=np.float64), np.arange(len(atoms))
    _, images, owners = periodic_images(atoms.positions, atoms.cell[:], reach, owners=True)
    return images, np.asarray(owners)


# ---- the work of one chunk ---------------------------------------------------------------------
_MODELS = {}  # path -> (identity, model): a worker loads the network once


def _model(path: str):
    stat = os.stat(path)
    identity = (stat.st_size, stat.st_mtime_ns)
    cached = _MODELS.get(path)
    if cached is None or cached[0] != identity:
        from .models import keras_module

        _MODELS[path] = (identity, keras_module().saving.load_model(path))
    return _MODELS[path][1]


def window_rotation(seed: int, window: int, view: int) -> np.ndarray:
    """The rotation of view ``view`` of window ``window``: the same whichever chunk or worker computes it."""
    from .structures import random_rotation

    return random_rotation(np.random.default_rng([int(seed), int(window), int(view)]))


def map_chunk(space: tuple, numbers: np.ndarray, centres: np.ndarray, first: int, options: dict) -> dict:
    """Classify the windows ``first, first + 1, ...`` centred at ``centres`` and return their per-window answers and
    their per-atom weighted sums (module docstring). ``space``: :func:`_search_space` and its k-d tree."""
    import logging
    import warnings

    from .fingerprint import diffraction_fingerprint
    from .models import feature_model, mc_dropout_samples, uncertainty
    from .structures import CLASSES

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    positions, owners, tree = space
    k, n_views, n_mc, seed = options["window_atoms"], options["n_views"], options["n_mc"], options["seed"]
    distance, index = tree.query(centres, k=k)
    distance, index = distance.reshape(len(centres), k), index.reshape(len(centres), k)
    X = np.empty((len(centres), n_views, 64, 64, 3), np.float32)
    for w in range(len(centres)):
        fragment = Atoms(numbers=numbers[owners[index[w]]], positions=positions[index[w]], pbc=False)
        for v in range(n_views):
            turned = fragment.copy()
            turned.positions = turned.positions @ window_rotation(seed, first + w, v).T
            X[w, v] = diffraction_fingerprint(turned)
    model = _model(options["model_path"])
    extractor = feature_model(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        features = np.asarray(extractor.predict(X.reshape((-1, 64, 64, 3)), batch_size=256, verbose=0), np.float64)
    # the same n_mc dropout masks for every window (as classify does): a window's answer does not depend on which
    # chunk or worker computes it
    samples = mc_dropout_samples(model, None, n_samples=n_mc, seed=seed, rate=None if n_mc > 1 else 0.0,
                                 features=features)  # (n_mc, windows * views, classes)
    samples = samples.reshape(n_mc, len(centres), n_views, -1).transpose(0, 2, 1, 3).reshape(n_mc * n_views,
                                                                                              len(centres), -1)
    answer = uncertainty(samples)
    radius = distance[:, -1]
    weight = np.exp(-0.5 * (distance / (options["weight_width"] * radius[:, None])) ** 2)
    atoms_of = owners[index]
    n_classes = len(CLASSES)
    atom_ids, inverse = np.unique(atoms_of.ravel(), return_inverse=True)
    sums = np.zeros((len(atom_ids), n_classes + 3))
    w = weight.ravel()
    np.add.at(sums[:, :n_classes], inverse, w[:, None] * np.repeat(answer["mean_probability"], k, axis=0))
    np.add.at(sums[:, n_classes], inverse, w * np.repeat(answer["mutual_information"], k))
    np.add.at(sums[:, n_classes + 1], inverse, w)
    np.add.at(sums[:, n_classes + 2], inverse, 1.0)
    return {"first": first, "centres": centres, "radius": radius, "probability": answer["mean_probability"],
            "entropy": answer["predictive_entropy"], "mutual_information": answer["mutual_information"],
            "atoms": atom_ids, "sums": sums}


# ---- bookkeeping -------------------------------------------------------------------------------
def _request_key(atoms: Atoms, options: dict) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(atoms.positions, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(atoms.cell[:], dtype=np.float64).tobytes())
    h.update(np.asarray(atoms.pbc, bool).tobytes())
    h.update(json.dumps({k: options[k] for k in sorted(options) if k != "model_path"}, sort_keys=True).encode())
    h.update(options["model_sha256"].encode())
    return h.hexdigest()


def _chunk_path(out: Path, first: int) -> Path:
    return out / f"windows-{first:09d}.npz"


def _save_chunk(out: Path, part: dict) -> None:
    path = _chunk_path(out, part["first"])
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in part.items()})
    os.replace(tmp, path)


def _load_chunk(out: Path, first: int):
    path = _chunk_path(out, first)
    if not path.exists():
        return None
    with np.load(path) as f:
        part = {k: f[k] for k in f.files}
    part["first"] = int(part["first"])
    return part


def _prepare_out(out: Path, key: str, overwrite: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "local_map.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old.get("key") != key or old.get("format") != FORMAT_VERSION:
            if not overwrite:
                raise FileExistsError(f"{out} holds the windows of another structure or other options: pass "
                                      "overwrite=True to replace them, or another folder")
            for p in out.glob("windows-*.npz"):
                p.unlink()
    for p in out.glob(".tmp-*"):
        p.unlink(missing_ok=True)
    tmp = manifest.with_name(".tmp-local_map.json")
    tmp.write_text(json.dumps({"format": FORMAT_VERSION, "key": key, "writer": "helpers.local"}))
    os.replace(tmp, manifest)


WINDOW_MODEL = "cnn_local"  # notebook 08's network for windows: data/cnn_local.keras and .json


def window_model_paths(directory=None) -> tuple:
    """(model, metadata) paths of the window network in ``directory`` (default data/)."""
    from .config import data_dir

    directory = Path(directory) if directory is not None else data_dir()
    return directory / f"{WINDOW_MODEL}.keras", directory / f"{WINDOW_MODEL}.json"


def save_window_model(model, info: dict, params: dict, start_from: Path, directory=None) -> Path:
    """Save notebook 08's window network beside its provenance (the parameters of its training windows, the
    network it was fine-tuned from, by SHA-256), each file written under a temporary name and then renamed."""
    from .provenance import NOTEBOOK_08, file_sha256, record, save_json

    path, meta_path = window_model_paths(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    model.save(tmp)
    os.replace(tmp, path)
    keep = {k: v for k, v in info.items() if k != "validation_index"}
    save_json(meta_path, {"training": keep, "start_from": str(start_from), "start_from_sha256": file_sha256(start_from),
                          "model_sha256": file_sha256(path)}, record(NOTEBOOK_08, params))
    return path


def shipped_window_model(params: dict, start_from: Path) -> tuple:
    """(path, None) of the window network shipped in helpers/pretrained when notebook 08 trained it with exactly
    ``params`` from the network at ``start_from`` (same SHA-256), and the file is the one it recorded; otherwise
    (None, the reason)."""
    from .models import PRETRAINED_DIR
    from .provenance import file_sha256

    path, meta_path = window_model_paths(PRETRAINED_DIR)
    if not path.exists() or not meta_path.exists():
        return None, "no window network is shipped"
    meta = json.loads(meta_path.read_text())
    made = (meta.get("provenance") or {}).get("params")
    if made != params:
        differ = sorted(k for k in set(made or {}) | set(params) if (made or {}).get(k) != params.get(k))
        return None, f"the shipped window network was trained with other parameters ({', '.join(differ)})"
    if meta.get("start_from_sha256") != file_sha256(start_from):
        return None, f"the shipped window network was fine-tuned from another network than {Path(start_from).name}"
    if meta.get("model_sha256") != file_sha256(path):
        return None, "the shipped window network's file is not the one its record names"
    return path, None


def default_model() -> Path:
    """The network a map uses when none is given: notebook 08's window network (data/, then the one shipped in
    helpers/pretrained), else notebook 07's orientation-free network (data/, then shipped). 08 measured the window
    network better on thermally disordered crystals."""
    from .models import PRETRAINED_DIR, check_saved_model

    for directory in (None, PRETRAINED_DIR):
        path, meta = window_model_paths(directory)
        if path.exists() and meta.exists():
            return path
    try:
        return check_saved_model(None, "any_orientation")[0]
    except FileNotFoundError:
        return check_saved_model(PRETRAINED_DIR, "any_orientation")[0]


def _model_path(model) -> Path:
    """The saved network to use: a path given, or :func:`default_model`."""
    if model is None:
        return default_model()
    path = Path(model)
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}: pass the path of a saved .keras model, or None for "
                            "the default (helpers.local.default_model)")
    return path


# ---- the entry point ---------------------------------------------------------------------------
class _InOrder:
    """The per-atom sums of a map, added chunk by chunk in chunk order whatever order the chunks finish in, so the
    map is the same to the last bit from run to run; only chunks that finished early wait (a few, as few as are in
    flight). With ``keep_windows`` the windows' own answers are kept too, in the same order."""

    def __init__(self, firsts: list, n_atoms: int, n_classes: int, keep_windows: bool):
        self.sums = np.zeros((n_atoms, n_classes + 3))
        self.window_parts, self.waiting, self.keep_windows = [], {}, keep_windows
        self._order = iter(firsts)
        self.next = next(self._order, None)

    def add(self, part: dict) -> None:
        self.waiting[part["first"]] = part
        while self.next in self.waiting:
            ready = self.waiting.pop(self.next)
            self.sums[ready["atoms"]] += ready["sums"]
            if self.keep_windows:
                self.window_parts.append({k: ready[k] for k in ("centres", "radius", "probability", "entropy",
                                                                "mutual_information")})
            self.next = next(self._order, None)


def _checked_request(atoms, window_atoms, n_views, n_mc, chunk_size) -> tuple:
    """(atoms, window_atoms, whether periodic) of a map request, or a ValueError that names the fix."""
    atoms = check_atoms(atoms)
    window_atoms = int(window_atoms)
    if window_atoms < 20:
        raise ValueError(f"window_atoms must be at least 20 (a fingerprint of fewer atoms has no peaks), got "
                         f"{window_atoms}")
    for name, value in (("n_views", n_views), ("n_mc", n_mc), ("chunk_size", chunk_size)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value!r}")
    periodic = bool(np.all(atoms.pbc))
    if not periodic and len(atoms) < window_atoms:
        raise ValueError(f"a finite structure of {len(atoms)} atoms is smaller than one window ({window_atoms} "
                         "atoms): classify it whole with helpers.classify.classify, or pass a smaller window_atoms")
    return atoms, window_atoms, periodic


def _mapped(atoms: Atoms, sums: np.ndarray) -> Atoms:
    """A copy of ``atoms`` with the per-atom arrays of :data:`ARRAYS`, from the per-atom sums of the windows
    (columns: weighted class probabilities, weighted mutual information, the weight, the number of windows)."""
    from scipy.stats import entropy

    from .structures import CLASSES

    n_classes = len(CLASSES)
    weight = sums[:, n_classes + 1]
    probabilities = sums[:, :n_classes] / weight[:, None]
    result = atoms.copy()
    result.calc = None
    result.set_array("local_class", np.asarray(CLASSES)[probabilities.argmax(axis=1)].astype(str))
    result.set_array("local_probability", probabilities.max(axis=1))
    result.set_array("local_entropy", entropy(probabilities, axis=1))
    result.set_array("local_mutual_information", sums[:, n_classes] / weight)
    result.set_array("local_windows", sums[:, n_classes + 2].astype(int))
    result.set_array("local_probabilities", probabilities)
    return result


def _windows_frame(parts: list):
    """The windows' answers (chunk by chunk, in order) as a DataFrame: centre, radius, entropy, mutual
    information, the probability of every class and the class."""
    import pandas as pd

    from .structures import CLASSES

    centres_done = np.concatenate([p["centres"] for p in parts])
    windows = pd.DataFrame({"x": centres_done[:, 0], "y": centres_done[:, 1], "z": centres_done[:, 2],
                            "radius": np.concatenate([p["radius"] for p in parts]),
                            "entropy": np.concatenate([p["entropy"] for p in parts]),
                            "mutual_information": np.concatenate([p["mutual_information"] for p in parts])})
    probability = np.concatenate([p["probability"] for p in parts])
    for c, name in enumerate(CLASSES):
        windows[f"p_{name}"] = probability[:, c]
    windows["class"] = np.asarray(CLASSES)[probability.argmax(axis=1)]
    return windows


def _window_space(atoms: Atoms, window_atoms: int, periodic: bool, nn: float) -> tuple:
    """(positions, owning atom) of the atoms and their periodic images that a window may take: within twice the
    radius of ``window_atoms`` atoms at the structure's mean density (room for sparse regions)."""
    volume = abs(np.linalg.det(atoms.cell[:])) if periodic else None
    density = len(atoms) / volume if periodic else 1.0 / (nn ** 3 / np.sqrt(2))
    reach = 2.0 * (3 * window_atoms / (4 * np.pi * density)) ** (1 / 3)
    positions, owners = _search_space(atoms, reach)
    if len(positions) < window_atoms:
        raise ValueError(f"{len(atoms)} atoms (with their periodic images within {reach:.1f} Å) are fewer than one "
                         f"window of {window_atoms}: pass a smaller window_atoms")
    return positions, owners


def _read_back(out: Path, firsts: list, key, overwrite: bool, add, bar) -> list:
    """The chunks (by first window) still to compute: those an earlier run with the same request (``key``) wrote to
    ``out`` are read back and added, not computed."""
    _prepare_out(out, key, overwrite)
    todo = []
    for f in firsts:
        part = _load_chunk(out, f)
        if part is None:
            todo.append(f)
        else:
            add(part)
            bar.update(len(part["centres"]))
    return todo


def structure_map(atoms: Atoms, window_atoms: int = DEFAULT_WINDOW_ATOMS, stride: float = DEFAULT_STRIDE,
                  n_views: int = DEFAULT_VIEWS, n_mc: int = DEFAULT_MC, seed: int = 0, model=None,
                  chunk_size: int = DEFAULT_CHUNK, address=None, n_workers: int | None = None, out=None,
                  overwrite: bool = False, progress: bool = True, return_windows: bool = False,
                  weight_width: float = DEFAULT_WEIGHT_WIDTH):
    """A per-atom map of local crystal structure (module docstring for the method).

    Parameters
    ----------
    atoms : ase.Atoms
        Periodic in all three directions (a bulk sample, an MD snapshot) or in none (a cluster, a nanoparticle).
    window_atoms : int
        Atoms per window.
    stride : float
        Distance between window centres in nearest-neighbour distances (the median of the structure's).
    n_views, n_mc : int
        Orientations per window, and Monte-Carlo dropout passes per view.
    seed : int
        Seed of the windows' orientations and of the dropout masks.
    model : path, optional
        A saved network for randomly oriented fragments (.keras); default :func:`default_model`.
    chunk_size : int
        Windows per task.
    address : str or distributed.Client, optional
        A Dask scheduler to run on; default a LocalCluster of ``n_workers`` processes started here. ``n_workers=0``
        computes in this process without Dask (small structures, tests).
    out : path, optional
        Folder for the finished chunks; a rerun reads them back (resume). ``overwrite`` replaces another map's.
    weight_width : float
        Width of the Gaussian weights of the windows that hold an atom, as a fraction of a window's radius.
    return_windows : bool
        Also return a DataFrame of the windows (centre, radius, probabilities, entropy, mutual information).

    Returns
    -------
    ase.Atoms (and the windows' DataFrame)
        A copy of ``atoms`` with the per-atom arrays of :data:`ARRAYS` (``local_probabilities``: (n, classes) in the
        order of ``info["local_classes"]``); ``info`` records the window size, stride and model. ``write_map``
        writes it as extended XYZ for OVITO or ``ase gui``.
    """
    from tqdm.auto import tqdm

    from .neighbours import kd_tree
    from .provenance import file_sha256
    from .structures import CLASSES

    atoms, window_atoms, periodic = _checked_request(atoms, window_atoms, n_views, n_mc, chunk_size)
    model_path = _model_path(model)
    nn = nearest_neighbour_distance(atoms)
    centres = window_centres(atoms, stride * nn)
    positions, owners = _window_space(atoms, window_atoms, periodic, nn)
    options = {"window_atoms": window_atoms, "stride": float(stride), "n_views": int(n_views), "n_mc": int(n_mc),
               "seed": int(seed), "weight_width": float(weight_width), "model_path": str(model_path), "model_sha256": file_sha256(model_path)}
    firsts = list(range(0, len(centres), int(chunk_size)))
    n_classes = len(CLASSES)
    summed = _InOrder(firsts, len(atoms), n_classes, return_windows)
    add = summed.add
    bar = tqdm(total=len(centres), desc="windows", unit="window", disable=not progress)
    out = None if out is None else Path(out)
    todo = list(firsts) if out is None else _read_back(out, firsts, _request_key(atoms, options), overwrite, add, bar)
    numbers = np.asarray(atoms.numbers)

    def finished(part):
        if out is not None:
            _save_chunk(out, part)
        add(part)
        bar.update(len(part["centres"]))

    if todo and n_workers == 0 and address is None:
        space = (positions, owners, kd_tree(positions))
        for f in todo:
            finished(map_chunk(space, numbers, centres[f: f + chunk_size], f, options))
    elif todo:
        _run_on_dask(positions, owners, numbers, centres, todo, int(chunk_size), options, address, n_workers,
                     finished)
    bar.close()
    if summed.waiting or summed.next is not None:
        raise RuntimeError("some chunks of windows never came back; run again (with out=..., it resumes)")
    sums = summed.sums
    if np.any(sums[:, n_classes + 2] == 0):
        missing = int(np.sum(sums[:, n_classes + 2] == 0))
        raise RuntimeError(f"{missing} atoms lie in no window (stride {stride} too large for window_atoms "
                           f"{window_atoms}): pass a smaller stride or a larger window_atoms")
    result = _mapped(atoms, sums)
    result.info.update({"local_classes": " ".join(CLASSES), "local_window_atoms": window_atoms,
                        "local_stride_nn": float(stride), "local_nn_distance": nn, "local_n_views": int(n_views),
                        "local_n_mc": int(n_mc), "local_seed": int(seed), "local_windows_total": len(centres),
                        "local_model_sha256": options["model_sha256"]})
    return (result, _windows_frame(summed.window_parts)) if return_windows else result


def _space_on_worker(positions, owners):
    """The k-d tree, built once per worker (cached under the scattered arrays' identity)."""
    from .neighbours import kd_tree

    key = (id(positions), len(positions))
    cached = _TREES.get(key)
    if cached is None:
        _TREES.clear()
        cached = (positions, owners, kd_tree(positions))
        _TREES[key] = cached
    return cached


_TREES = {}


def _dask_chunk(positions, owners, numbers, centres, first, options):
    return map_chunk(_space_on_worker(positions, owners), numbers, centres, first, options)


def _run_on_dask(positions, owners, numbers, centres, todo, chunk_size, options, address, n_workers, finished):
    from distributed import as_completed

    from .batch import _client

    client, cluster, ours = _client(address, n_workers)
    try:
        # hash=False: a key of its own for each map. Hashed keys are the same for the same arrays (two snapshots of
        # one element share `numbers`), and the previous map's release of that key could cancel this map's chunks
        shared = client.scatter([positions, owners, numbers], broadcast=True, hash=False)
        in_flight = max(2, 2 * len(client.scheduler_info().get("workers", {})))
        pending = iter(todo)
        futures = as_completed()
        for _ in range(in_flight):
            f = next(pending, None)
            if f is None:
                break
            futures.add(client.submit(_dask_chunk, *shared, centres[f: f + chunk_size], f, options, pure=False))
        for future in futures:
            finished(future.result())
            future.release()
            f = next(pending, None)
            if f is not None:
                futures.add(client.submit(_dask_chunk, *shared, centres[f: f + chunk_size], f, options, pure=False))
    finally:
        if ours:
            client.close()
            if cluster is not None:
                cluster.close()


def write_map(atoms: Atoms, path) -> Path:
    """Write a map (or any Atoms with per-atom arrays) as extended XYZ, which OVITO and ``ase gui`` colour by any
    per-atom column; written to a temporary file first, then renamed."""
    import ase.io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    plain = atoms.copy()
    plain.info = {k: v for k, v in atoms.info.items() if np.isscalar(v)}
    ase.io.write(tmp, plain, format="extxyz")
    os.replace(tmp, path)
    return path


# ---- a network for windows ---------------------------------------------------------------------
def _windows_of(parents: list, rng: np.random.Generator, sigmas, window_atoms: int) -> list:
    """A ``window_atoms``-atom sphere cut from each parent's turned crystal, displaced by its sigma (in NN)."""
    from .structures import prepared_cluster

    out = []
    for parent, sigma in zip(parents, sigmas):
        cluster = prepared_cluster(parent, rng, window_atoms)
        cluster.positions = cluster.positions + rng.normal(0.0, sigma * parent.nn_distance, cluster.positions.shape)
        out.append(cluster)
    return out


def window_training_set(n_per_class: int, seed: int = 0, max_displacement: float = 0.15,
                        window_atoms: int = DEFAULT_WINDOW_ATOMS, split_seed: int = 0, test_fraction: float = 0.2,
                        n_jobs: int | None = None, progress: bool = True) -> dict:
    """Fingerprints of windows as a map meets them in a crystal: ``window_atoms``-atom spheres cut from turned
    crystals of every class (parents drawn as 01 draws them), each atom displaced by a Gaussian of σ per coordinate
    drawn uniformly in [0, ``max_displacement``] nearest-neighbour distances (thermal motion up to and past melting:
    by Lindemann's rule the root-mean-square displacement at melting is about a tenth of that distance). Parents come from the training side of 01's split
    (``split_seed``, ``test_fraction``: 01's ``data_seed`` and test fraction), so no crystal group of 01's held-out
    sets is trained on.

    Returns ``{"X", "y", "elements", "sigma"}``."""
    return _window_set(n_per_class, "train", seed, lambda rng, n: rng.uniform(0.0, max_displacement, n),
                       window_atoms, split_seed, test_fraction, n_jobs, progress)


def window_test_set(n_per_class: int, sigmas, seed: int = 1, window_atoms: int = DEFAULT_WINDOW_ATOMS,
                    split_seed: int = 0, test_fraction: float = 0.2, n_jobs: int | None = None,
                    progress: bool = True) -> dict:
    """Windows from 01's held-out crystal groups, ``n_per_class`` per class at every displacement of ``sigmas``
    (the same parents and clusters at every level). Returns ``{"X", "y", "elements", "sigma"}``."""
    sigmas = [float(s) for s in sigmas]
    if not sigmas:
        raise ValueError("sigmas is empty: pass at least one displacement")
    parts = [_window_set(n_per_class, "test", seed, lambda rng, n, s=s: np.full(n, s), window_atoms, split_seed,
                         test_fraction, n_jobs, progress) for s in sigmas]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _window_set(n_per_class, side, seed, draw_sigma, window_atoms, split_seed, test_fraction, n_jobs, progress):
    from .fingerprint import diffraction_fingerprints
    from .structures import CLASSES, draw_parents

    if int(n_per_class) < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    rng = np.random.default_rng(seed)
    fragments, labels, elements, sigmas = [], [], [], []
    for c, name in enumerate(CLASSES):
        parents = draw_parents(name, int(n_per_class), side, split_seed, test_fraction, rng)
        sigma = draw_sigma(rng, len(parents))
        fragments += _windows_of(parents, rng, sigma, window_atoms)
        labels += [c] * len(parents)
        elements += [p.element for p in parents]
        sigmas += list(sigma)
    X = diffraction_fingerprints(fragments, n_jobs=n_jobs, progress=progress, desc=f"{side} windows")
    return {"X": X, "y": np.asarray(labels), "elements": np.asarray(elements), "sigma": np.asarray(sigmas)}


# ---- judging a map against the truth -----------------------------------------------------------
def region_accuracy(truth: np.ndarray, named: np.ndarray, boundary_distance: np.ndarray, interior: float) -> dict:
    """Share of atoms named right in the grain interiors (farther than ``interior`` Å from every boundary) and at the
    boundaries (the rest), with how many atoms each holds."""
    truth, named = np.asarray(truth).astype(str), np.asarray(named).astype(str)
    inside = np.asarray(boundary_distance) > interior
    right = truth == named
    return {"interior": float(right[inside].mean()) if inside.any() else float("nan"),
            "boundary": float(right[~inside].mean()) if (~inside).any() else float("nan"),
            "n_interior": int(inside.sum()), "n_boundary": int((~inside).sum())}


def choose_threshold(uncertainty: np.ndarray, crystal: np.ndarray, false_alarms: float = 0.05) -> float:
    """The uncertainty above which an atom is flagged: the (1 - ``false_alarms``) quantile of the uncertainty of the
    crystal atoms ``crystal`` of a calibration sample, so that at most that share of them is flagged there."""
    values = np.asarray(uncertainty)[np.asarray(crystal, bool)]
    if values.size == 0:
        raise ValueError("no crystal atoms to calibrate the threshold on")
    return float(np.quantile(values, 1.0 - false_alarms))


CLASS_COLOURS = {"bct_139": "#8c564b", "bct_141": "#e377c2", "hex_rh": "#2ca02c", "sc": "#9467bd", "fcc": "#1f77b4",
                 "diam": "#bcbd22", "bcc": "#ff7f0e", "other": "#7f7f7f", "liquid": "#d62728"}


def draw_slices(atoms: Atoms, columns: dict, thickness: float = 3.0, uncertainty: str | None = None,
                title: str | None = None):
    """One panel per entry of ``columns`` ({title: per-atom class names}), each the atoms of a slab
    ``thickness`` Å thick through the middle of the box (along z) coloured by class; with ``uncertainty`` (a
    per-atom array name), one more panel coloured by it; ``title`` above them all. Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    z = atoms.positions[:, 2]
    middle = 0.5 * (z.min() + z.max())
    slab = np.abs(z - middle) < thickness / 2
    panels = len(columns) + (uncertainty is not None)
    fig, axes = plt.subplots(1, panels, figsize=(3.1 * panels, 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    x, y = atoms.positions[slab, 0], atoms.positions[slab, 1]
    seen = set()
    for ax, (title, names) in zip(axes, columns.items()):
        names = np.asarray(names).astype(str)[slab]
        seen.update(names)
        ax.scatter(x, y, c=[CLASS_COLOURS.get(n, "#000000") for n in names], s=4, linewidths=0)
        ax.set_title(title, fontsize=9)
    if uncertainty is not None:
        values = atoms.arrays[uncertainty][slab]
        im = axes[-1].scatter(x, y, c=values, s=4, linewidths=0, cmap="magma")
        axes[-1].set_title(uncertainty.replace("local_", "").replace("_", " ") + " (nats)", fontsize=9)
        fig.colorbar(im, ax=axes[-1], fraction=0.046)
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Line2D([], [], marker="o", ls="", color=CLASS_COLOURS[n], label=n) for n in CLASS_COLOURS if n in seen]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 0.92 if title else 1))
    return fig
