"""Generation and storage of the data sets (notebook 01) and their fingerprints (notebook 02).

One .npz file per data set, written and checked by :mod:`helpers.provenance`: deterministically (same inputs,
same bytes) and atomically. Every file carries its generating parameters, seeds and package versions; loading a
file made with other parameters than the caller asks for, or from inputs that changed since, stops with a message
that names the notebook (and the parameter) to rerun.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from ase import Atoms

from . import config, defects, provenance, structures
from .fingerprint import diffraction_fingerprints
from .parallel import map_chunks
from .provenance import NOTEBOOK_01, NOTEBOOK_02, StaleDataError

__all__ = ["StaleDataError"]  # raised by the loaders below; defined in helpers.provenance

STRUCTURE_SETS = ("train", "test_pristine", "test_vacancies", "test_displacements")
_SIDE_CODE = {"train": 0, "test": 1}
ANY_PREFIX = "any_"  # notebook 07's randomly oriented sets: data/structures_any_train.npz, ...


# ---- structure sets ----------------------------------------------------------------------------
@dataclass
class StoredSet:
    """Arrays of one data file, its JSON metadata, and the data set's name."""

    name: str
    arrays: dict
    meta: dict

    def __len__(self) -> int:
        return len(self.arrays["label"])

    def __getitem__(self, key):
        return self.arrays[key]

    @property
    def class_names(self) -> list:
        return [str(c) for c in self.arrays["class_names"]]


class StructureSet(StoredSet):
    """A stored data set of prepared structures and their labels."""

    def atoms(self, i: int) -> Atoms:
        """Structure i: a periodic block, or (``periodic`` false, notebook 07's clusters) a finite cluster."""
        n = int(self.arrays["n_atoms"][i])
        periodic = bool(self.arrays["periodic"][i]) if "periodic" in self.arrays else True
        return Atoms(numbers=self.arrays["numbers"][i, :n], positions=self.arrays["positions"][i, :n],
                     cell=self.arrays["cells"][i] if periodic else None, pbc=periodic)

    def all_atoms(self) -> list:
        return [self.atoms(i) for i in range(len(self))]


def structure_path(name: str) -> Path:
    return config.data_dir() / f"structures_{name}.npz"


def fingerprint_path(name: str) -> Path:
    return config.data_dir() / f"fingerprints_{name}.npz"


def known_sets(prefix: str = "") -> tuple:
    """The names of the structure sets notebook 01 writes (``prefix`` ``ANY_PREFIX``: notebook 07's)."""
    return tuple(prefix + n for n in STRUCTURE_SETS)


def _check_name(name: str) -> None:
    if name not in known_sets() + known_sets(ANY_PREFIX):
        raise ValueError(f"unknown data set {name!r}: notebook 01 writes {', '.join(known_sets())}; notebook 07 "
                         f"writes the same names with the prefix {ANY_PREFIX!r}")


def _writer(name: str) -> str:
    return provenance.NOTEBOOK_07 if name.startswith(ANY_PREFIX) else NOTEBOOK_01


def load_structures(name: str, expect: dict | None = None) -> StructureSet:
    """Load a structure set written by notebook 01 (or, for an ``any_`` set, notebook 07).

    Parameters
    ----------
    name : str
        One of :func:`known_sets` (or with the prefix ``ANY_PREFIX``).
    expect : dict, optional
        Data parameters it must have been made with (e.g. ``{"data_seed": 0, "n_per_class": 1500}``).

    Raises
    ------
    ValueError
        For a name no notebook writes.
    FileNotFoundError, StaleDataError
        When the file is missing, damaged, of another format or made with other parameters; the message names
        the notebook to rerun.
    """
    _check_name(name)
    arrays, meta = provenance.load_npz(structure_path(name), _writer(name), expect)
    return StructureSet(name, arrays, meta)


def _record(atoms: Atoms, defect: str, level: float, parent: structures.Parent, index: int) -> dict:
    return {"positions": atoms.positions, "cell": np.asarray(atoms.cell[:]), "numbers": atoms.numbers,
            "periodic": bool(np.all(atoms.pbc)),
            "parent_obj": parent, "parent": index, "defect": defect, "defect_level": level}


def _build_chunk(start: int, jobs: list, seed: int, target_atoms: int, vacancy_fraction: float,
                 displacement_sigma: float, orientation: str = "standard", cluster_fraction: float = 0.0) -> list:
    """Worker: prepared supercells (and defective copies for test parents; for a training parent, with
    probability ``cluster_fraction``, also a cluster cut from its crystal); None for a parent whose pristine
    space group is not its prototype's (dropped)."""
    out = []
    for side, class_index, draw, parent in jobs:
        if parent.space_group != structures.PROTOTYPES[parent.prototype].space_group:
            out.append(None)
            continue
        rng = np.random.default_rng([seed, _SIDE_CODE[side], class_index, draw])
        atoms = structures.prepared_parent(parent, rng, target_atoms=target_atoms, orientation=orientation)
        records = [(atoms, "none", 0.0)]
        if side == "train" and cluster_fraction > 0:
            cluster_rng = np.random.default_rng([seed, _SIDE_CODE[side], class_index, draw, 3])
            if cluster_rng.random() < cluster_fraction:
                records.append((structures.prepared_cluster(parent, cluster_rng, target_atoms), "none", 0.0))
        if side == "test":
            vac_rng = np.random.default_rng([seed, _SIDE_CODE[side], class_index, draw, 1])
            dis_rng = np.random.default_rng([seed, _SIDE_CODE[side], class_index, draw, 2])
            records.append((defects.vacancies(atoms, vacancy_fraction, vac_rng), "vacancies", vacancy_fraction))
            records.append((defects.displacements(atoms, displacement_sigma, dis_rng,
                                                  nn_distance=parent.nn_distance),
                            "displacements", displacement_sigma))
        out.append(records)
    return out


def _pack(records: list, class_names: list) -> dict:
    n = len(records)
    max_atoms = max(len(r["numbers"]) for r in records)
    positions = np.zeros((n, max_atoms, 3))
    numbers = np.zeros((n, max_atoms), np.uint8)
    for i, r in enumerate(records):
        positions[i, : len(r["numbers"])] = r["positions"]
        numbers[i, : len(r["numbers"])] = r["numbers"]
    parents = [r["parent_obj"] for r in records]
    return {
        "positions": positions,
        "cells": np.stack([r["cell"] for r in records]),
        "numbers": numbers,
        "n_atoms": np.array([len(r["numbers"]) for r in records], np.int32),
        "periodic": np.array([r["periodic"] for r in records]),
        "label": np.array([class_names.index(p.class_name) for p in parents], np.int16),
        "class_names": np.array(class_names),
        "element": np.array([p.element for p in parents]),
        "prototype": np.array([p.prototype for p in parents]),
        "spacegroup": np.array([p.space_group for p in parents], np.int16),
        "group": np.array([p.group for p in parents]),
        "lattice_parameters": np.array([p.lattice_text for p in parents]),
        "nn_distance": np.array([p.nn_distance for p in parents]),
        "parent": np.array([r["parent"] for r in records], np.int32),
        "defect": np.array([r["defect"] for r in records]),
        "defect_level": np.array([r["defect_level"] for r in records]),
    }


def reuse_sets(expect: dict, prefix: str = "") -> tuple | None:
    """The four structure sets of ``prefix`` and their fingerprints, ``({name: StructureSet}, {name: FingerprintSet})``
    keyed without the prefix, when data/ holds all of them, made with exactly the parameters ``expect`` and current
    (every check of :func:`load_structures` and :func:`load_fingerprints`); None otherwise. A rerun of notebook 07
    with other views, pools or training then does not make its data again."""
    try:
        made = {name: load_structures(prefix + name, expect) for name in STRUCTURE_SETS}
        fps = {name: load_fingerprints(prefix + name, expect) for name in STRUCTURE_SETS}
    except (FileNotFoundError, provenance.StaleDataError):
        return None
    if any(made[n].meta.get("params") != expect for n in made):  # every parameter, not only those asked about
        return None
    return made, fps


def _build_side(build, side: str, wanted: int, seed: int, test_fraction: float, n_jobs, progress: bool) -> tuple:
    """([(parent, built records)] of ``wanted`` parents per class for ``side`` ("train" or "test"), in class order;
    {class: parents dropped}). Draws what is still missing, plus a few for parents spglib rejects, until every
    class has its count."""
    class_names = list(structures.CLASSES)
    per_class = {c: [] for c in class_names}
    dropped = {c: 0 for c in class_names}
    draws = {c: 0 for c in class_names}
    rngs = {c: np.random.default_rng([seed, _SIDE_CODE[side], ci, 10**6]) for ci, c in enumerate(class_names)}
    while True:
        jobs = []
        for ci, c in enumerate(class_names):
            missing = wanted - len(per_class[c])
            if missing <= 0:
                continue
            extra = missing + max(2, missing // 50)
            for parent in structures.draw_parents(c, extra, side, seed, test_fraction, rngs[c]):
                jobs.append((side, ci, draws[c], parent))
                draws[c] += 1
        if not jobs:
            break
        desc = f"{side} structures" if progress else None
        for _, chunk, results in map_chunks(build, jobs, n_jobs=n_jobs, chunk_size=32, progress=progress,
                                            desc=desc, unit="structure"):
            for (_, ci, _, parent), result in zip(chunk, results):
                c = class_names[ci]
                if result is None:
                    dropped[c] += 1
                elif len(per_class[c]) < wanted:
                    per_class[c].append((parent, result))
    return [item for c in class_names for item in per_class[c]], dropped


def generate_structure_sets(n_per_class: int = 1500, n_test_per_class: int = 200, seed: int = 0,
                            target_atoms: int = 256, vacancy_fraction: float = 0.25,
                            displacement_sigma: float = 0.02, test_fraction: float = 0.2,
                            n_jobs: int | None = None, progress: bool = True, orientation: str = "standard",
                            name_prefix: str = "", cluster_fraction: float = 0.0) -> dict:
    """Build the four structure sets of notebook 01 (balanced classes, held-out test groups).

    Returns {name: StructureSet} for ``STRUCTURE_SETS``, each set named ``name_prefix + name`` (notebook 07 keeps
    its randomly oriented sets beside 01's with ``name_prefix=ANY_PREFIX``). ``cluster_fraction`` (randomly oriented
    data only): the share of training parents that also give a finite cluster of ``target_atoms`` atoms cut from
    their crystal (:func:`helpers.structures.prepared_cluster`), besides their block. Everything is drawn from ``seed``; the
    result does not depend on ``n_jobs``. ``orientation`` is "standard" (the paper's protocol: every crystal in
    spglib's standard orientation) or "random" (the random rotation survives the standardisation); see
    ``structures.prepare``.
    """
    structures.check_orientation(orientation)
    if not 0.0 <= cluster_fraction <= 1.0 or (cluster_fraction and orientation != "random"):
        raise ValueError(f"cluster_fraction must lie in [0, 1], and be 0 unless orientation='random' (a cluster has "
                         f"no standard orientation); got {cluster_fraction} with orientation={orientation!r}")
    if n_per_class < 1 or n_test_per_class < 1:
        raise ValueError("n_per_class and n_test_per_class must be at least 1")
    if not 32 <= target_atoms <= 4096:
        raise ValueError(f"target_atoms must be between 32 and 4096, got {target_atoms}")
    params = {"n_per_class": int(n_per_class), "n_test_per_class": int(n_test_per_class), "data_seed": int(seed),
              "target_atoms": int(target_atoms), "vacancy_fraction": float(vacancy_fraction),
              "displacement_sigma": float(displacement_sigma), "test_fraction": float(test_fraction),
              "orientation": orientation, "cluster_fraction": float(cluster_fraction)}
    class_names = list(structures.CLASSES)
    build = partial(_build_chunk, seed=seed, target_atoms=target_atoms, vacancy_fraction=vacancy_fraction,
                    displacement_sigma=displacement_sigma, orientation=orientation, cluster_fraction=cluster_fraction)
    kept, dropped = {}, {}
    for side, wanted in (("train", n_per_class), ("test", n_test_per_class)):
        kept[side], dropped[side] = _build_side(build, side, wanted, seed, test_fraction, n_jobs, progress)

    # Training parents give one pristine structure each; every test parent gives the same rotated
    # supercell three times: pristine, with vacancies, with displacements (one set each).
    sets = {"train": [_record(*rec, parent=p, index=i) for i, (p, recs) in enumerate(kept["train"]) for rec in recs]}
    for k, name in enumerate(STRUCTURE_SETS[1:]):
        sets[name] = [_record(*recs[k], parent=p, index=i) for i, (p, recs) in enumerate(kept["test"])]
    out = {}
    for name, records in sets.items():
        meta = provenance.record(_writer(name_prefix + name), params, kind="structures", name=name_prefix + name,
                                 dropped=dropped["train" if name == "train" else "test"])
        out[name] = StructureSet(name_prefix + name, _pack(records, class_names), meta)
    return out


def save_structure_set(dataset: StructureSet) -> Path:
    return provenance.save_npz(structure_path(dataset.name), dataset.arrays, dataset.meta)


def structure_db_path(name: str) -> Path:
    return config.data_dir() / f"structures_{name}.db"


#: Key-value pairs of every row of a structure database: what ``ase db FILE label=fcc`` selects on.
DB_KEYS = ("label", "class_index", "prototype", "element", "spacegroup", "defect", "level", "parent", "group")


def save_structure_db(dataset: StructureSet, progress: bool = False) -> Path:
    """Write a structure set as an ASE database beside its .npz (``data/structures_<name>.db``), where
    ``ase db`` lists and selects it and ``ase gui`` shows it: one row per structure with the key-value pairs
    ``DB_KEYS`` (``label`` is the class name, ``level`` the defect's level, 0 for pristine), and the set's
    provenance record as the database's metadata. Written to a temporary file and renamed (never half-written).
    The .npz stays what the notebooks read (faster: ``make bench-scale`` times both)."""
    import ase.db
    from tqdm.auto import tqdm

    path = structure_db_path(dataset.name)
    tmp = provenance.temporary_path(path)
    tmp.unlink(missing_ok=True)
    a, names = dataset.arrays, dataset.class_names
    try:
        with ase.db.connect(tmp, type="db", append=False) as db:
            for i in tqdm(range(len(dataset)), desc=f"{dataset.name}.db", disable=not progress, unit="structure"):
                label = int(a["label"][i])
                db.write(dataset.atoms(i), label=names[label], class_index=label, prototype=str(a["prototype"][i]),
                         element=str(a["element"][i]), spacegroup=int(a["spacegroup"][i]),
                         defect=str(a["defect"][i]), level=float(a["defect_level"][i]), parent=int(a["parent"][i]),
                         group=str(a["group"][i]))
            db.metadata = json.loads(json.dumps(dataset.meta, default=provenance.jsonable))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---- fingerprint sets --------------------------------------------------------------------------
class FingerprintSet(StoredSet):
    """Fingerprints X (n, 64, 64, 3) of a structure set, with its labels and descriptors."""

    @property
    def X(self) -> np.ndarray:
        return self.arrays["X"]

    @property
    def y(self) -> np.ndarray:
        return self.arrays["label"]


_CARRIED = ("label", "class_names", "element", "prototype", "spacegroup", "group", "parent", "defect",
            "defect_level", "n_atoms")


def compute_fingerprint_set(source: StructureSet, n_jobs: int | None = None, progress: bool = True) -> FingerprintSet:
    X = diffraction_fingerprints(source.all_atoms(), n_jobs=n_jobs, progress=progress, desc=source.name)
    arrays = {"X": X, **{k: source.arrays[k] for k in _CARRIED}}
    path = structure_path(source.name)
    writer = NOTEBOOK_02 if not source.name.startswith(ANY_PREFIX) else provenance.NOTEBOOK_07
    meta = provenance.record(writer, source.meta["params"], inputs=[path] if path.exists() else [],
                             fingerprint=True, kind="fingerprints", name=source.name)
    return FingerprintSet(source.name, arrays, meta)


def save_fingerprint_set(fps: FingerprintSet) -> Path:
    return provenance.save_npz(fingerprint_path(fps.name), fps.arrays, fps.meta)


def load_fingerprints(name: str, expect: dict | None = None) -> FingerprintSet:
    """Load fingerprints written by notebook 02 (07 for an ``any_`` set).

    Stops (:class:`~helpers.provenance.StaleDataError`, naming the notebook to rerun) when they were made with
    other data parameters than ``expect``, with other fingerprint settings than this version of
    :mod:`helpers.fingerprint` uses, or from a structure file that has been regenerated since."""
    _check_name(name)
    writer = NOTEBOOK_02 if not name.startswith(ANY_PREFIX) else provenance.NOTEBOOK_07
    arrays, meta = provenance.load_npz(fingerprint_path(name), writer, expect)
    return FingerprintSet(name, arrays, meta)
