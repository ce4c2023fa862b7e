"""``classify``: crystal class of your own structures, with how sure the network is.

    from helpers.classify import classify
    classify(["Cu.cif", "POSCAR", ase.build.bulk("W")])

Each structure is brought to the form the network was trained on, whatever form it came in
(:func:`helpers.lattice.standard_block`): the crystal's lattice and ideal cell are found among the atoms (a
supercell of any shape, with vacancies or displaced atoms, turned any way), and the structure is re-cut into a
block of about ``target_atoms`` atoms of its own conventional cell, in spglib's standard orientation for a model
trained on the paper's protocol (the default of notebook 01), its defects kept. A model trained on randomly
oriented crystals gets the same block in the input's own orientation, and its answer is combined over several
random orientations (``n_orientations``). The model of the paper's protocol needs a lattice to align by: a
structure without one (a cluster, a nanoparticle) gets an error that says so.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms

from . import models
from .fingerprint import check_structure, diffraction_fingerprint, diffraction_fingerprints
from .lattice import AlignmentError, standard_block
from .orientations import (DEFAULT_ORIENTATIONS, DEFAULT_POOL, check_n_orientations, check_pool,
                           orientation_mc_dropout)
from .structures import CLASSES, check_orientation


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


def _is_periodic(atoms: Atoms) -> bool:
    cell = np.asarray(atoms.cell[:], dtype=np.float64)
    return bool(np.all(atoms.pbc)) and bool(np.all(np.isfinite(cell))) and abs(np.linalg.det(cell)) > 1e-8


def prepare_for_classification(atoms: Atoms, target_atoms: int = 256, allow_multiple_elements: bool = False,
                               orientation: str = "standard") -> tuple:
    """(structure to fingerprint, a note on what was done): the structure re-cut to about ``target_atoms`` atoms of
    its crystal's conventional cell, in spglib's standard orientation (``orientation="standard"``) or in its own
    (``"random"``), defects kept (:func:`helpers.lattice.standard_block`). Raises ValueError naming the fix."""
    check_orientation(orientation)
    if len(atoms) and not _is_periodic(atoms):
        raise ValueError(
            f"non-periodic structure (pbc={np.asarray(atoms.pbc).tolist()}): the network of the paper's protocol "
            "sees crystals in their standard orientation, which is found from the crystal's lattice, and this "
            "structure has none. For a crystal, set atoms.pbc = True and give its three cell vectors; a cluster or "
            "a nanoparticle needs an orientation-free model (notebook 07, 07_any_orientation), which this version "
            "does not include yet")
    check_structure(atoms if len(atoms) != 1 else atoms.repeat(2))  # a 1-atom primitive cell is fine here
    if not allow_multiple_elements and len(set(atoms.numbers)) > 1:
        raise ValueError(f"{atoms.get_chemical_formula()} has {len(set(atoms.numbers))} elements, but the network "
                         "was trained on elemental crystals only; pass allow_multiple_elements=True to classify "
                         "it anyway (its answer is then outside what was tested)")
    try:
        block = standard_block(atoms, target_atoms, keep_orientation=orientation == "random")
    except AlignmentError as exc:
        raise ValueError(f"could not find the crystal behind these {len(atoms)} atoms ({exc}); give the crystal's "
                         "cell, or a supercell of it") from exc
    frame = "its own orientation" if orientation == "random" else "standard orientation"
    how = (f"{block.international} ({block.space_group}), {block.n_basis}-atom primitive cell ({block.how}); "
           f"re-cut to {'x'.join(map(str, block.repeats))} conventional cells, {frame}")
    return block.atoms, how


def classify(structures, model=None, n_mc: int = 50, seed: int = 0, target_atoms: int | None = None,
             allow_multiple_elements: bool = False, orientation: str | None = None,
             n_orientations: int | None = None, n_jobs: int | None = None, progress: bool = False,
             pool: str = DEFAULT_POOL):
    """Classify ASE ``Atoms`` objects and/or structure files; returns a pandas DataFrame.

    One row per structure (per frame for multi-frame files): ``source``, ``formula``, ``n_atoms``
    (as fingerprinted), ``prepared`` (what was done to it: the crystal found and the block it was re-cut to),
    ``n_orientations``, ``predicted_class``, ``probability`` (that class's probability: each view's mean over
    ``n_mc`` Monte-Carlo-dropout passes, combined over the views with ``pool``), ``predictive_entropy`` and
    ``mutual_information`` (nats, over the ``n_mc`` stochastic passes of each view together), ``p_<class>`` for
    every class (combined like ``probability``), and ``error``.

    Every structure is re-cut to the block the network was trained on (module docstring), so the answer does not
    depend on the size or shape of the supercell given, nor on how it is turned. ``orientation`` is that of the
    model's training data: "standard" (the paper's protocol: one fingerprint of the block in spglib's standard
    orientation) or "random" (the block keeps the input's orientation and is fingerprinted as given and in
    ``n_orientations - 1`` more random orientations, drawn from ``seed``, whose answers are combined with ``pool``:
    "log", the normalised geometric mean of the views' probabilities, or "linear", their arithmetic mean; see
    :func:`helpers.orientations.combine_views`). ``n_orientations`` defaults to ``DEFAULT_ORIENTATIONS`` (16) for
    "random" and is 1 for "standard", which turning would undo.
    An input that cannot be classified gets a row with its error and no prediction (and a warning); when no input
    at all can be classified, a ValueError is raised instead. ``model=None`` loads the model that notebook 03
    saved under data/; ``target_atoms`` and ``orientation`` then default to those of its training data (otherwise
    to 256 and "standard").
    """
    import pandas as pd

    if isinstance(structures, (Atoms, str, os.PathLike)):
        structures = [structures]
    structures = list(structures)
    if not structures:
        raise ValueError("nothing to classify: pass at least one ase.Atoms or file path")
    trained_on = {}
    if model is None:
        model, meta = models.load_model()
        trained_on = meta.get("data", {}).get("params", {})
    target_atoms = int(target_atoms or trained_on.get("target_atoms", 256))
    orientation = check_orientation(orientation or trained_on.get("orientation", "standard"))
    if n_orientations is None:
        n_orientations = DEFAULT_ORIENTATIONS if orientation == "random" else 1
    n_orientations = check_n_orientations(n_orientations)
    check_pool(pool)
    if orientation == "standard" and n_orientations != 1:
        raise ValueError(f"n_orientations={n_orientations!r}, but the model was trained on crystals in the standard "
                         "orientation, which turning them would undo: pass n_orientations=1")
    rows, ready = [], []
    for item in structures:
        try:
            frames = _read(item)
        except (OSError, ValueError, TypeError) as exc:
            rows.append({"source": str(item), "error": str(exc)})
            continue
        for source, atoms in frames:
            row = {"source": source, "formula": atoms.get_chemical_formula()}
            try:
                prepared, how = prepare_for_classification(atoms, target_atoms, allow_multiple_elements, orientation)
            except ValueError as exc:
                row["error"] = f"{source}: {exc}"
            else:
                row.update(n_atoms=len(prepared), prepared=how, error=None)
                ready.append((len(rows), prepared))
            rows.append(row)
    if not ready:
        raise ValueError("no structure could be classified:\n" + "\n".join(r["error"] for r in rows))
    if n_jobs is None:  # worker processes only pay off for a batch of some size
        n_jobs = 1 if len(ready) < 32 else None
    try:
        X = diffraction_fingerprints([a for _, a in ready], n_jobs=n_jobs, progress=progress)
    except ValueError:
        # one structure the fingerprint refuses (e.g. two atoms on one site) must not cost the others
        kept, fps = [], []
        for i, atoms in ready:
            try:
                fps.append(diffraction_fingerprint(atoms))
                kept.append((i, atoms))
            except ValueError as exc:
                rows[i].update(n_atoms=None, prepared=None, error=f"{rows[i]['source']}: {exc}")
        if not kept:
            raise ValueError("no structure could be classified:\n" + "\n".join(r["error"] for r in rows)) from None
        ready, X = kept, np.stack(fps)
    out = orientation_mc_dropout(model, [a for _, a in ready], n_orientations=n_orientations, n_samples=n_mc,
                                 seed=seed, fingerprints=X, n_jobs=n_jobs, progress=progress, pool=pool)
    for k, (i, _) in enumerate(ready):
        p = out["pooled_probability"][k]
        rows[i].update(n_orientations=n_orientations, predicted_class=CLASSES[int(out["predicted"][k])],
                       probability=float(p.max()),
                       predictive_entropy=float(out["predictive_entropy"][k]),
                       mutual_information=float(out["mutual_information"][k]),
                       **{f"p_{c}": float(p[j]) for j, c in enumerate(CLASSES)})
    failed = [r["error"] for r in rows if r.get("error")]
    if failed:
        warnings.warn(f"{len(failed)} of {len(rows)} inputs could not be classified (see the 'error' column); "
                      f"first: {failed[0]}", stacklevel=2)
    columns = (["source", "formula", "n_atoms", "prepared", "n_orientations", "predicted_class", "probability",
                "predictive_entropy", "mutual_information"] + [f"p_{c}" for c in CLASSES] + ["error"])
    return pd.DataFrame(rows).reindex(columns=columns)
