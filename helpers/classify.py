"""``classify``: crystal class of your own structures, with how sure the network is.

    from helpers.classify import classify
    classify(["Cu.cif", "POSCAR", ase.build.bulk("W"), nanoparticle])

Two trained networks answer, and ``classify`` chooses for each structure (``model="auto"``, the default):

* **The paper's model** (notebook 03, crystals in their standard orientation) for a periodic structure whose
  crystal can be found among its atoms (:func:`helpers.lattice.standard_block`): the lattice and ideal cell are
  found (a supercell of any shape, with vacancies or displaced atoms, turned any way), and the structure is
  re-cut into a block of about ``target_atoms`` atoms of its own conventional cell in spglib's standard
  orientation, defects kept. One fingerprint answers.
* **The orientation-free model** (notebook 07, crystals in any orientation) for a structure without a lattice to
  align by: a finite cluster or nanoparticle (not periodic in all three directions, or without a cell), or a
  periodic structure whose crystal could not be found. Its atoms are fingerprinted as given (a large cluster is
  cut to the ``target_atoms`` atoms nearest its centre, the size the network was trained on), in
  ``n_orientations`` orientations (16 by default), whose answers are combined (``pool``).

``model="paper"`` or ``model="any_orientation"`` forces one of them (the orientation-free model then takes a
periodic crystal re-cut in its own orientation); a Keras model can also be passed, with the ``orientation`` of
its training data. The returned table says which model answered each structure and from how many views.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms

from . import models, trust
from .fingerprint import check_structure
from .lattice import AlignmentError, standard_block
from .neighbours import is_periodic
from .orientations import DEFAULT_ORIENTATIONS, DEFAULT_POOL, check_n_orientations, check_pool, orientation_mc_dropout
from .structures import CLASSES, ball_cut, check_orientation

#: what each model choice is called in the returned table
MODEL_NAMES = {"paper": "paper protocol (notebook 03)", "any_orientation": "any orientation (notebook 07)",
               "given": "the model passed"}
#: how ``prepared`` begins when a periodic structure's crystal was not found among its atoms
NO_LATTICE = "no lattice found"
#: the ``verdict`` of such a structure (a liquid, an amorphous solid, or a crystal too disordered to find)
NO_ORDER = "no crystalline order found"
#: the ``verdict`` of an answer whose mutual information is above its model's calibrated threshold
UNCERTAIN = "uncertain"


def _read(item) -> list:
    """[(source, Atoms)] for an Atoms object or a file (every frame of a multi-frame file)."""
    if isinstance(item, Atoms):
        return [(item.get_chemical_formula() or "Atoms", item)]
    if isinstance(item, (str, os.PathLike)):
        import ase.io

        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file; check the path")
        try:
            frames = ase.io.read(path, index=":")
        except Exception as exc:
            raise ValueError(f"{path}: ase.io.read cannot read it ({type(exc).__name__}: {exc}); pass a file "
                             "in a format ASE reads (CIF, POSCAR, extxyz, ...) or give format via ase.io.read "
                             "and pass the Atoms") from exc
        frames = frames if isinstance(frames, list) else [frames]
        if not frames:
            raise ValueError(f"{path}: the file holds no structure")
        if len(frames) == 1:
            return [(str(path), frames[0])]
        return [(f"{path}@{i}", frame) for i, frame in enumerate(frames)]
    raise TypeError(f"cannot classify a {type(item).__name__}: pass ase.Atoms objects or paths of structure files")


def cluster_block(atoms: Atoms, target_atoms: int = 256) -> tuple:
    """(finite cluster, note) for the orientation-free model: the atoms as given, without periodicity; a
    structure of more than 1.5 x ``target_atoms`` atoms is cut to the ``target_atoms`` atoms nearest its centre
    of mass (:func:`helpers.structures.ball_cut`; the size the network was trained on: the width of the
    diffraction peaks depends on it)."""
    if len(atoms) > 1.5 * target_atoms:
        return ball_cut(atoms, target_atoms), f"finite cluster: the {target_atoms} atoms nearest the centre of {len(atoms)}"
    return ball_cut(atoms, len(atoms)), f"finite cluster of {len(atoms)} atoms, as given"


def prepare_for_classification(atoms: Atoms, target_atoms: int = 256, allow_multiple_elements: bool = False,
                               orientation: str = "standard") -> tuple:
    """(structure to fingerprint, a note on what was done): the structure re-cut to about ``target_atoms`` atoms of
    its crystal's conventional cell, in spglib's standard orientation (``orientation="standard"``) or in its own
    (``"random"``), defects kept (:func:`helpers.lattice.standard_block`). Raises ValueError naming the fix;
    AlignmentError (a ValueError) when the structure has no lattice to find (non-periodic, or amorphous)."""
    check_orientation(orientation)
    if len(atoms) and not is_periodic(atoms):
        raise AlignmentError(
            f"non-periodic structure (pbc={np.asarray(atoms.pbc).tolist()}): the network of the paper's protocol "
            "sees crystals in their standard orientation, which is found from the crystal's lattice, and this "
            "structure has none. For a crystal, set atoms.pbc = True and give its three cell vectors; a cluster or "
            "a nanoparticle is for the orientation-free model of notebook 07 (07_any_orientation): "
            "classify(..., model='any_orientation'), or model='auto'")
    check_structure(atoms if len(atoms) != 1 else atoms.repeat(2))  # a 1-atom primitive cell is fine here
    _check_elements(atoms, allow_multiple_elements)
    try:
        block = standard_block(atoms, target_atoms, keep_orientation=orientation == "random")
    except AlignmentError as exc:
        raise AlignmentError(f"could not find the crystal behind these {len(atoms)} atoms ({exc}); give the "
                             "crystal's cell, or a supercell of it, or let the orientation-free model answer "
                             "(model='any_orientation' or 'auto')") from exc
    frame = "its own orientation" if orientation == "random" else "standard orientation"
    how = (f"{block.international} ({block.space_group}), {block.n_basis}-atom primitive cell ({block.how}); "
           f"re-cut to {'x'.join(map(str, block.repeats))} conventional cells, {frame}")
    return block.atoms, how


VACUUM_NN = 3.0  # an empty layer wider than this many nearest-neighbour distances is vacuum, not bulk (graphite's
                 # interlayer gap is 2.4 of them, and a dense crystal has none wider than about 1)


def vacuum_gaps(atoms: Atoms) -> list:
    """Per cell vector: the widest empty layer between the atoms' planes along it (Angstrom, across the periodic
    boundary; 0 where ``pbc`` is False or the cell has no volume)."""
    cell = np.asarray(atoms.cell[:], dtype=np.float64)
    if len(atoms) < 2 or abs(np.linalg.det(cell)) < 1e-8:
        return [0.0, 0.0, 0.0]
    inverse = np.linalg.inv(cell)
    frac = atoms.positions @ inverse
    gaps = []
    for i in range(3):
        f = np.sort(frac[:, i] - np.floor(frac[:, i]))
        widest = max(float(np.diff(f).max(initial=0.0)), float(f[0] + 1.0 - f[-1]))
        gaps.append(widest / float(np.linalg.norm(inverse[:, i])) if atoms.pbc[i] else 0.0)
    return gaps


def bulk_or_cluster(atoms: Atoms) -> tuple:
    """(structure, note): a crystal periodic in all three directions as it is; a finite cluster as it is; a
    cluster in a periodic box (vacuum along every cell vector, as DFT codes want molecules and nanoparticles) as a
    finite cluster, said in the note. A slab, a 2D material or a wire (periodic in one or two directions only, by
    ``pbc`` or by vacuum layers) gets a ValueError that says what was found: the networks know bulk crystals and
    finite clusters, and a slab is neither."""
    from .neighbours import nearest_neighbour_distances

    pbc = np.asarray(atoms.pbc, dtype=bool)
    if len(atoms) < 2 or not pbc.any():
        return atoms, ""
    names = "abc"
    gaps = vacuum_gaps(atoms)
    if is_periodic(atoms):
        nn = float(np.median(nearest_neighbour_distances(atoms.positions, atoms.cell[:])))
        vacuum = [g > VACUUM_NN * nn for g in gaps]
        if not any(vacuum):
            return atoms, ""
        if all(vacuum):
            cluster = atoms.copy()
            cluster.pbc = False
            return cluster, (f"a finite cluster in a periodic box (vacuum of {min(gaps):.1f} Å or more along a, b and "
                             "c): taken as a finite cluster; ")
        found = ", ".join(f"{gaps[i]:.1f} Å of vacuum along {names[i]}" for i in range(3) if vacuum[i])
        extended = 3 - sum(vacuum)
    else:
        found = "pbc=" + str(pbc.tolist())
        extended = int(pbc.sum())
    what = "a slab or a 2D material" if extended == 2 else "a wire or a chain"
    raise ValueError(f"{what}: periodic along {extended} cell vector{'s' if extended > 1 else ''} only ({found}). The "
                     "networks were trained on bulk crystals (periodic in three directions) and on finite clusters, "
                     "and this is neither: give the bulk crystal, or set atoms.pbc = False to have its atoms "
                     "classified as a finite cluster by the orientation-free model (a flat or thin one: outside what "
                     "was tested)")


def _check_elements(atoms: Atoms, allow_multiple_elements: bool) -> None:
    if not allow_multiple_elements and len(set(atoms.numbers)) > 1:
        raise ValueError(f"{atoms.get_chemical_formula()} has {len(set(atoms.numbers))} elements, but the network "
                         "was trained on elemental crystals only; pass allow_multiple_elements=True to classify "
                         "it anyway (its answer is then outside what was tested)")


def prepare_any_orientation(atoms: Atoms, target_atoms: int, allow_multiple_elements: bool) -> tuple:
    """For the orientation-free model: a periodic crystal re-cut in its own orientation, anything else (or a
    periodic structure whose lattice is not found: ``prepared`` then begins with ``NO_LATTICE``) as a finite cluster;
    a periodic box of fewer than ``target_atoms`` atoms is repeated before the cluster is cut from it."""
    if len(atoms) and is_periodic(atoms):
        try:
            return prepare_for_classification(atoms, target_atoms, allow_multiple_elements, "random")
        except AlignmentError as exc:
            reason = f"{NO_LATTICE} ({str(exc).split(';')[0]}); "
    else:
        reason = ""
    check_structure(atoms)
    _check_elements(atoms, allow_multiple_elements)
    if reason and len(atoms) < target_atoms:
        # a small periodic box: its periodic images are the atoms' real neighbours, so the cluster is cut from
        # the box repeated until it holds the cluster
        k = int(np.ceil((1.5 * target_atoms / len(atoms)) ** (1.0 / 3.0)))
        atoms = atoms.repeat(k)
        reason += f"the box repeated {k}x{k}x{k}; "
    cluster, how = cluster_block(atoms, target_atoms)
    check_structure(cluster)
    return cluster, reason + how


_SAVED = {}  # kind -> (file identity, (model, metadata)): a process classifying chunk after chunk loads once


def _load_saved(kind: str):
    """The saved model of ``kind``, loaded again only when its file changed (size or modification time)."""
    path = models.model_paths(kind=kind)[0]
    try:
        stat = path.stat()
        identity = (str(path), stat.st_size, stat.st_mtime_ns)
    except OSError:
        identity = None
    cached = _SAVED.get(kind)
    if identity is not None and cached is not None and cached[0] == identity:
        return cached[1]
    loaded = models.load_model(kind=kind)
    _SAVED[kind] = (identity, loaded)
    return loaded


class _Models:
    """The saved models, loaded when first needed; a missing one becomes an error row, not a crash."""

    def __init__(self):
        self.loaded = {}

    def get(self, kind: str):
        if kind not in self.loaded:
            try:
                self.loaded[kind] = _load_saved(kind)
            except (FileNotFoundError, models.StaleDataError) as exc:
                self.loaded[kind] = exc
        found = self.loaded[kind]
        if isinstance(found, Exception):
            raise found
        return found


def classify(structures, model="auto", n_mc: int = 50, seed: int = 0, target_atoms: int | None = None,
             allow_multiple_elements: bool = False, orientation: str | None = None,
             n_orientations: int | None = None, n_jobs: int | None = None, progress: bool = False,
             pool: str = DEFAULT_POOL, trust_threshold: float | None = None):
    """Classify ASE ``Atoms`` objects and/or structure files.

    Parameters
    ----------
    structures : Atoms, path or a list of them
        Structures, or files that ``ase.io.read`` reads (every frame of a multi-frame file is classified).
    model : {"auto", "paper", "any_orientation"} or keras.Model
        "auto": the paper's model where the crystal can be aligned by its lattice, the orientation-free model of
        notebook 07 otherwise (a cluster, a frame without a cell). A Keras model is used as given, with the
        ``orientation`` of its training data ("standard", the default, or "random").
    n_mc : int
        Monte-Carlo-dropout passes per view.
    seed : int
        Seed of the dropout masks and of the views' rotations.
    target_atoms : int, optional
        Size of the block every structure is re-cut to (default: that of the model's training data).
    allow_multiple_elements : bool
        Classify compounds too (the networks were trained on elemental crystals).
    orientation : {"standard", "random"}, optional
        How a passed Keras model's training data were oriented.
    n_orientations : int, optional
        Views of each structure for a model of randomly oriented crystals (default ``DEFAULT_ORIENTATIONS``); the
        paper's model always answers from one view, in the standard orientation.
    n_jobs : int, optional
        Worker processes for the fingerprints (default: every core).
    progress : bool
        Show progress bars.
    pool : {"log", "linear"}
        How the views' answers are combined (:func:`helpers.orientations.combine_views`).
    trust_threshold : float, optional
        Mutual information (nats) above which an answer is marked untrusted. Default: the threshold calibrated on
        held-out crystals and saved with the model that answers (:mod:`helpers.trust`); a passed Keras model has
        none unless given here.

    Returns
    -------
    pandas.DataFrame
        One row per structure: ``source``, ``formula``, ``model`` (which network answered: ``MODEL_NAMES``),
        ``n_atoms`` (as fingerprinted), ``prepared`` (what was done to it), ``n_orientations``, ``predicted_class``,
        ``probability`` (of that class: each view's mean over the dropout passes, combined over the views),
        ``predictive_entropy`` and ``mutual_information`` (nats), ``trust_threshold`` (the threshold it was held
        to), ``trusted`` (True, False, or None where the model has no threshold), ``verdict``, ``p_<class>`` for
        every class, and ``error``.

        ``trusted`` is False when the mutual information is above the threshold, and when a periodic structure's
        crystal was not found among its atoms (``prepared`` then begins with "no lattice found" and the
        orientation-free model answered from its atoms as a cluster). ``verdict`` is the predicted class when the
        answer is trusted (or has no threshold), ``NO_ORDER`` ("no crystalline order found": a liquid, an
        amorphous solid, or a crystal too disordered for its lattice to be found) for such a periodic structure,
        and ``UNCERTAIN`` otherwise. A warning counts the answers not trusted.

    Raises
    ------
    ValueError
        When nothing was given, a parameter is not one of its choices, or no input at all can be classified. An
        input that cannot be classified otherwise gets a row with its error (and a warning), and the others
        keep their answers.

    Notes
    -----
    Every structure is re-cut to the block its model was trained on, so the answer depends neither on the size or
    shape of the supercell given nor on how it is turned.
    """
    import pandas as pd

    structures = _as_list(structures)
    check_pool(pool)
    trust_threshold = trust.check_threshold(trust_threshold)
    if n_orientations is not None:
        n_orientations = check_n_orientations(n_orientations)
    planner = _Planner(model, orientation, n_orientations, target_atoms, allow_multiple_elements, trust_threshold)
    rows, ready = _read_and_plan(structures, planner)
    groups = {}
    for entry in ready:
        groups.setdefault((entry[1], entry[4]), []).append(entry)
    for (key, views), group in groups.items():
        _answer(group, views, rows, n_mc, seed, n_jobs, progress, pool)
    _warn(rows, _judge(rows))
    if all(r.get("error") for r in rows):
        raise ValueError("no structure could be classified:\n" + "\n".join(r["error"] for r in rows))
    return pd.DataFrame(rows).reindex(columns=COLUMNS)


#: the columns of classify's table, in order
COLUMNS = (["source", "formula", "model", "n_atoms", "prepared", "n_orientations", "predicted_class", "probability",
            "predictive_entropy", "mutual_information", "trust_threshold", "trusted", "verdict"]
           + [f"p_{c}" for c in CLASSES] + ["error"])


def _as_list(structures) -> list:
    if isinstance(structures, (Atoms, str, os.PathLike)):
        structures = [structures]
    structures = list(structures)
    if not structures:
        raise ValueError("nothing to classify: pass at least one ase.Atoms or file path")
    return structures


class _Planner:
    """For each structure: which network answers, the structure it is shown (re-cut or cut), from how many views,
    and the threshold of trust its answer is held to (:func:`classify`'s rules)."""

    def __init__(self, model, orientation, n_orientations, target_atoms, allow_multiple_elements, trust_threshold):
        self.saved = _Models()
        self.target_atoms, self.allow_multiple_elements = target_atoms, allow_multiple_elements
        self.n_orientations, self.trust_threshold = n_orientations, trust_threshold
        if model is None:
            model = "auto"
        if isinstance(model, str):
            if model != "auto":
                models.check_kind(model)
            if orientation is not None:
                raise ValueError(f"orientation={orientation!r} describes a model you pass; the saved models know "
                                 "their own: leave it out, or pass the Keras model itself")
            self.model, self.given = model, None
        else:
            self.model, self.given = "given", model
            orientation = check_orientation(orientation or "standard")
            if orientation == "standard" and n_orientations not in (None, 1):
                raise ValueError(f"n_orientations={n_orientations!r}, but the model was trained on crystals in the "
                                 "standard orientation, which turning them would undo: pass n_orientations=1")
        self.orientation = orientation

    def plan(self, atoms: Atoms) -> tuple:
        """(model key, Keras model, structure to fingerprint, note, views, trust threshold) for one structure."""
        atoms, found = bulk_or_cluster(atoms)
        key, net, prepared, how, views = self._plan_bulk_or_cluster(atoms)
        threshold = self.trust_threshold
        if threshold is None and key != "given":
            threshold = trust.threshold_of(self.saved.get(key)[1])
        return key, net, prepared, found + how, views, threshold

    def _network(self, kind: str) -> tuple:
        """(Keras model, block size) of a saved model ``kind``."""
        net, meta = self.saved.get(kind)
        return net, int(self.target_atoms or meta.get("params", {}).get("target_atoms", 256))

    def _plan_bulk_or_cluster(self, atoms: Atoms) -> tuple:
        if len(atoms) == 0 or not is_periodic(atoms):
            check_structure(atoms)  # an empty or broken cluster is named as such before any model is loaded
        if self.given is not None:
            key, net, size = "given", self.given, int(self.target_atoms or 256)
            kind = "paper" if self.orientation == "standard" else "any_orientation"
        else:
            kind = self.model
            if kind == "auto":
                kind = "paper" if len(atoms) and is_periodic(atoms) else "any_orientation"
            key = kind
            net, size = self._network(kind)
        if kind == "paper":
            try:
                prepared, how = prepare_for_classification(atoms, size, self.allow_multiple_elements, "standard")
                return key, net, prepared, how, 1
            except AlignmentError:
                if self.model != "auto":
                    raise
                key = "any_orientation"
                net, size = self._network(key)
        prepared, how = prepare_any_orientation(atoms, size, self.allow_multiple_elements)
        return key, net, prepared, how, self.n_orientations or DEFAULT_ORIENTATIONS


def _read_and_plan(structures: list, planner: _Planner) -> tuple:
    """(rows, ready): a row per structure read (its error where it cannot be read or prepared), and for each one to
    answer (row number, model key, Keras model, structure to fingerprint, views)."""
    rows, ready, model_errors = [], [], []
    for item in structures:
        try:
            frames = _read(item)
        except (OSError, ValueError, TypeError) as exc:
            rows.append({"source": str(item), "error": str(exc)})
            continue
        for source, atoms in frames:
            row = {"source": source, "formula": atoms.get_chemical_formula()}
            try:
                key, net, prepared, how, views, threshold = planner.plan(atoms)
            except (FileNotFoundError, models.StaleDataError) as exc:  # a model not trained yet, or stale
                row["error"] = f"{source}: {exc}"
                model_errors.append(exc)
            except ValueError as exc:
                row["error"] = f"{source}: {exc}"
            else:
                row.update(model=MODEL_NAMES[key], n_atoms=len(prepared), prepared=how, n_orientations=views,
                           trust_threshold=threshold, error=None)
                ready.append((len(rows), key, net, prepared, views))
            rows.append(row)
    if not ready:
        if model_errors and len(model_errors) == len(rows):
            raise model_errors[0]
        raise ValueError("no structure could be classified:\n" + "\n".join(r["error"] for r in rows))
    return rows, ready


def _warn(rows: list, untrusted: int) -> None:
    """Warn of the answers not to be trusted and of the inputs that could not be classified."""
    failed = [r["error"] for r in rows if r.get("error")]
    if untrusted:
        warnings.warn(f"{untrusted} of {len(rows)} answers are not to be trusted (see the 'trusted' and 'verdict' "
                      "columns): their crystal was not found among their atoms, or their mutual information is above "
                      "the threshold of trust of the model that answered", stacklevel=3)
    if failed:
        warnings.warn(f"{len(failed)} of {len(rows)} inputs could not be classified (see the 'error' column); "
                      f"first: {failed[0]}", stacklevel=3)


def _judge(rows: list) -> int:
    """Fill ``trusted`` and ``verdict`` of every answered row (see :func:`classify`); the number not trusted."""
    untrusted = 0
    for row in rows:
        if row.get("error") or row.get("predicted_class") is None:
            continue
        no_lattice = str(row.get("prepared") or "").startswith(NO_LATTICE)
        threshold = row.get("trust_threshold")
        if no_lattice:
            trusted, verdict = False, NO_ORDER
        elif threshold is None:
            trusted, verdict = None, row["predicted_class"]
        elif row["mutual_information"] > threshold:
            trusted, verdict = False, UNCERTAIN
        else:
            trusted, verdict = True, row["predicted_class"]
        row.update(trusted=trusted, verdict=verdict)
        untrusted += trusted is False
    return untrusted


def _answer(group: list, views: int, rows: list, n_mc: int, seed: int, n_jobs, progress: bool, pool: str) -> None:
    """Fill the rows of one model's structures with its answer from ``views`` views each; a structure the
    fingerprint refuses (e.g. two atoms on one site) gets an error row and costs the others nothing."""
    from .fingerprint import diffraction_fingerprint

    net = group[0][2]

    def refuse(entry, exc) -> None:
        rows[entry[0]].update(n_atoms=None, prepared=None, model=None, n_orientations=None, trust_threshold=None,
                              error=f"{rows[entry[0]]['source']}: {exc}")

    def answer(entries):
        return orientation_mc_dropout(net, [e[3] for e in entries], n_orientations=views, n_samples=n_mc, seed=seed,
                                      n_jobs=n_jobs, progress=progress, pool=pool) if entries else None

    kept = []
    for entry in group:
        try:
            check_structure(entry[3])
            kept.append(entry)
        except ValueError as exc:
            refuse(entry, exc)
    if n_jobs is None:  # worker processes only pay off for a batch of some size
        n_jobs = 1 if len(kept) * views < 64 else None
    try:
        out = answer(kept)
    except ValueError:
        survivors = []
        for entry in kept:
            try:
                diffraction_fingerprint(entry[3])
                survivors.append(entry)
            except ValueError as exc:
                refuse(entry, exc)
        kept = survivors
        out = answer(kept)
    for k, entry in enumerate(kept):
        p = out["pooled_probability"][k]
        rows[entry[0]].update(predicted_class=CLASSES[int(out["predicted"][k])], probability=float(p.max()),
                              predictive_entropy=float(out["predictive_entropy"][k]),
                              mutual_information=float(out["mutual_information"][k]),
                              **{f"p_{c}": float(p[j]) for j, c in enumerate(CLASSES)})
