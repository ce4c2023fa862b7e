"""``classify``: crystal class of your own structures, with how sure the network is.

    from helpers.classify import classify
    classify(["Cu.cif", "POSCAR", ase.build.bulk("W")])

Each structure is prepared as the training data were, without depending on finding symmetry:
a small cell (fewer than ``min_atoms`` atoms) is brought to its standard conventional cell when
spglib finds one (the cell as given otherwise) and repeated to about ``target_atoms`` atoms; a
larger structure, e.g. a supercell with vacancies or displaced atoms, is used as it is. The answer
is combined over several random orientations of the prepared structure (``n_orientations``). A model
trained on data of notebook 01's ``orientation="standard"`` gets small cells in spglib's standard
orientation; input it cannot align (a large supercell) is outside what that model learned, and its
row says so.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms

from . import models
from .fingerprint import check_structure, diffraction_fingerprint, diffraction_fingerprints
from .orientations import (DEFAULT_ORIENTATIONS, DEFAULT_POOL, check_n_orientations, check_pool,
                           orientation_mc_dropout)
from .structures import CLASSES, space_group, standard_conventional_cell, supercell_repeats


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


def prepare_for_classification(atoms: Atoms, target_atoms: int = 256, min_atoms: int = 128,
                               allow_multiple_elements: bool = False, orientation: str = "random") -> tuple:
    """(structure to fingerprint, a note on what was done). Raises ValueError naming the fix."""
    check_structure(atoms if len(atoms) != 1 else atoms.repeat(2))  # a 1-atom primitive cell is fine here
    if not allow_multiple_elements and len(set(atoms.numbers)) > 1:
        raise ValueError(f"{atoms.get_chemical_formula()} has {len(set(atoms.numbers))} elements, but the network "
                         "was trained on elemental crystals only; pass allow_multiple_elements=True to classify "
                         "it anyway (its answer is then outside what was tested)")
    if len(atoms) >= min_atoms:
        if orientation == "standard":
            return atoms, "used as given (not aligned: the model was trained on standard-orientation crystals)"
        return atoms, "used as given"
    cell = None
    if space_group(atoms) > 1:  # P1 has nothing to standardise: keep the cell the user gave
        try:
            cell = standard_conventional_cell(atoms, idealize=orientation == "standard")
            how = "standard conventional cell" + (" in standard orientation" if orientation == "standard" else "")
        except ValueError:
            cell, how = None, "cell as given (spglib could not standardise it)"
    else:
        how = "cell as given (spglib found no symmetry)"
    if cell is None:
        cell = Atoms(numbers=atoms.numbers, cell=atoms.cell[:], positions=atoms.positions, pbc=True)
    reps = supercell_repeats(cell.cell[:], len(cell), target_atoms)
    return cell.repeat(reps), f"{how} x {reps[0]}x{reps[1]}x{reps[2]}"


def classify(structures, model=None, n_mc: int = 50, seed: int = 0, target_atoms: int | None = None,
             min_atoms: int = 128, allow_multiple_elements: bool = False, orientation: str | None = None,
             n_orientations: int | None = None, n_jobs: int | None = None, progress: bool = False,
             pool: str = DEFAULT_POOL):
    """Classify ASE ``Atoms`` objects and/or structure files; returns a pandas DataFrame.

    One row per structure (per frame for multi-frame files): ``source``, ``formula``, ``n_atoms``
    (as fingerprinted), ``prepared`` (what was done to it), ``n_orientations``, ``predicted_class``,
    ``probability`` (that class's probability: each view's mean over ``n_mc`` Monte-Carlo-dropout passes,
    combined over the views with ``pool``), ``predictive_entropy`` and ``mutual_information`` (nats, over
    the ``n_mc`` stochastic passes of each of the ``n_orientations`` views together), ``p_<class>`` for every
    class (combined like ``probability``), and ``error``.

    Each structure is fingerprinted as given and in ``n_orientations - 1`` more random orientations
    (:mod:`helpers.orientations`, drawn from ``seed``), and the answer is combined over them: one
    fingerprint of a randomly turned crystal is an arbitrary cut through its reciprocal lattice.
    ``pool`` is "log" (normalised geometric mean of the views' probabilities, the default) or "linear"
    (their arithmetic mean); see :func:`helpers.orientations.combine_views`.
    The default is ``DEFAULT_ORIENTATIONS`` (16) for a model trained on randomly oriented crystals
    and 1 (the structure as given) for one trained in the standard orientation, which must not be
    turned. An input that cannot be classified gets a row with its error and no prediction
    (and a warning); when no input at all can be classified, a ValueError is raised instead.
    ``model=None`` loads the model that notebook 03 saved under data/; ``target_atoms`` and
    ``orientation`` then default to those of its training data (otherwise to 256 and "random").
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
    orientation = orientation or trained_on.get("orientation", "random")
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
                prepared, how = prepare_for_classification(atoms, target_atoms, min_atoms, allow_multiple_elements,
                                                           orientation)
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
