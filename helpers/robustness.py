"""The paper's central comparison: the CNN against spglib on defective copies of the held-out
parents, at many vacancy and displacement levels (notebook 03).

spglib is counted right when it returns the parent's space group (166 or 194 both count for
``hex_rh``, the class that merges them). Its tolerance ``symprec`` is in Angstrom, on the structures
at their real size, as a user would call it. The CNN is right when it names the parent's class.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from . import defects
from .fingerprint import SHAPE, diffraction_fingerprint
from .parallel import map_chunks
from .structures import CLASS_SPACE_GROUPS, CLASSES, space_group

VACANCY_LEVELS = (0.01, 0.02, 0.05, 0.10, 0.20, 0.25, 0.30, 0.40, 0.50)
DISPLACEMENT_LEVELS = (0.001, 0.006, 0.01, 0.02, 0.04, 0.08)  # sigma / nearest-neighbour distance
#: The accuracy below which a method counts as broken at a level (the range study's threshold).
BROKEN = 0.9
SYMPRECS = (1e-3, 1e-1)  # Angstrom: tight and loose
_KIND_CODE = {"none": 0, "vacancies": 1, "displacements": 2}


def spglib_right(found: int, parent_space_group: int, class_name: str) -> bool:
    """spglib's answer counts when it is the parent's group; for hex_rh, 166 and 194 both count."""
    if class_name == "hex_rh":
        return int(found) in CLASS_SPACE_GROUPS["hex_rh"]
    return int(found) == int(parent_space_group)


def defect_levels(vacancy_levels=VACANCY_LEVELS, displacement_levels=DISPLACEMENT_LEVELS,
                  beyond_vacancy_levels=(), beyond_displacement_levels=()) -> list:
    """(defect, level) pairs of the comparison, pristine first, then the paper's vacancy and displacement levels, then
    the levels past them (notebook 03's ``beyond_*_levels``, where the CNN itself fails; spglib is not run there, as
    it fails at the paper's first level already): those come last, so that adding them leaves the place, and
    so the random draw (:func:`run_defects`), of every paper level as it was."""
    return ([("none", 0.0)] + [("vacancies", float(v)) for v in vacancy_levels]
            + [("displacements", float(s)) for s in displacement_levels]
            + [("vacancies", float(v)) for v in beyond_vacancy_levels]
            + [("displacements", float(s)) for s in beyond_displacement_levels])


def _defective(atoms, defect: str, level: float, nn_distance: float, rng: np.random.Generator):
    if defect == "vacancies":
        return defects.vacancies(atoms, level, rng)
    if defect == "displacements":
        return defects.displacements(atoms, level, rng, nn_distance=nn_distance)
    return atoms


def _chunk(start: int, jobs: list, seed: int, symprecs: tuple, keep_structures: bool = False) -> list:
    """Worker: for each job, the defective copy's fingerprint (None where ``known``), where asked spglib's space group
    at each symprec (-1 where not asked, None where ``known``), and with ``keep_structures`` the defective copy itself
    (else None)."""
    out = []
    for index, atoms, nn_distance, defect, level_index, level, with_spglib, known in jobs:
        if known and not keep_structures:
            out.append((None, None, None))
            continue
        rng = np.random.default_rng([seed, 31, index, _KIND_CODE[defect], level_index])
        defective = _defective(atoms, defect, level, nn_distance, rng)
        found = None if known else [space_group(defective, symprec=s) if with_spglib else -1 for s in symprecs]
        out.append((None if known else diffraction_fingerprint(defective), found,
                    defective if keep_structures else None))
    return out


def pick_parents(labels: np.ndarray, n_per_class: int) -> np.ndarray:
    """Indices of the first ``n_per_class`` structures of every class (fewer where a class has fewer)."""
    labels = np.asarray(labels)
    return np.concatenate([np.flatnonzero(labels == c)[:n_per_class] for c in range(len(CLASSES))])


def run_defects(pristine, levels: list, n_per_class: int = 100, seed: int = 0, symprecs=SYMPRECS,
                n_spglib_per_class: int | None = None, n_jobs: int | None = None, progress: bool = True,
                keep_structures: bool = False, known: dict | None = None, spglib_levels=None) -> dict:
    """Defective copies of held-out pristine supercells (a StructureSet) at every (defect, level),
    their fingerprints and spglib's space groups.

    The first ``n_per_class`` parents of every class are used; spglib is run on the first
    ``n_spglib_per_class`` of them (all when None), at the levels of ``spglib_levels`` ((defect, level) pairs; None:
    every level): on a defective 256-atom cell one call takes far longer than its fingerprint.

    Returns arrays over all (level, structure) pairs: ``X`` (fingerprints), ``label``, ``defect``,
    ``level``, ``parent`` (row in ``pristine``), ``spacegroup`` (the parent's), and
    ``spglib`` (n, len(symprecs)) with spglib's answers (-1 where spglib was not run); with ``keep_structures``
    also ``structures``, the defective copies themselves (notebook 07 turns them and asks its own model).

    ``known``: an earlier run's result (:func:`save_runs` / :func:`load_runs`, notebook 03's) made with the same
    ``seed`` and ``symprecs`` from the same held-out parents. A defective copy is the same whenever its parent, defect,
    level and place in ``levels`` are (its random draw is seeded by them), so its fingerprint and spglib's answers are
    taken from there instead of computed again (spglib only where the earlier run asked it). ``reused`` counts them.
    """
    picked = pick_parents(pristine["label"], n_per_class)
    if len(picked) == 0:
        raise ValueError("the held-out set has no structures; rerun notebook 01")
    with_spglib = set(pick_parents(pristine["label"], n_per_class if n_spglib_per_class is None
                                   else min(n_spglib_per_class, n_per_class)).tolist())
    atoms = {int(i): pristine.atoms(int(i)) for i in picked}
    spglib_at = {(str(d), float(v)) for d, v in (spglib_levels or ())}
    earlier = {}
    if known is not None and known.get("seed") == seed and tuple(known["symprecs"]) == tuple(symprecs):
        for row, key in enumerate(zip(known["parent"], known["defect"], known["level_index"], known["level"])):
            earlier[(int(key[0]), str(key[1]), int(key[2]), float(key[3]))] = row
    jobs, rows_known = [], []
    for k, (defect, level) in enumerate(levels):
        for i in picked:
            row = earlier.get((int(i), defect, k, float(level)))
            asked = int(i) in with_spglib and (spglib_levels is None or (defect, float(level)) in spglib_at)
            if row is not None and asked and known["spglib"][row, 0] < 0:
                row = None  # the earlier run did not ask spglib about this one
            rows_known.append(row)
            jobs.append((int(i), atoms[int(i)], float(pristine["nn_distance"][i]), defect, k, level, asked,
                         row is not None))
    X = np.empty((len(jobs), *SHAPE), np.float32)
    found = np.empty((len(jobs), len(symprecs)), np.int16)
    kept = [None] * len(jobs)
    work = partial(_chunk, seed=seed, symprecs=tuple(symprecs), keep_structures=keep_structures)
    for start, chunk, results in map_chunks(work, jobs, n_jobs=n_jobs, chunk_size=16, progress=progress,
                                            desc="defective copies", unit="structure"):
        for j, (fp, sgs, defective) in enumerate(results):
            row = rows_known[start + j]
            X[start + j] = fp if row is None else known["X"][row]
            found[start + j] = sgs if row is None else np.where(jobs[start + j][6], known["spglib"][row], -1)
            kept[start + j] = defective
    rows = np.array([job[0] for job in jobs])
    extra = {"structures": kept} if keep_structures else {}
    return {**extra, "X": X, "parent": rows, "label": np.asarray(pristine["label"])[rows].astype(int),
            "spacegroup": np.asarray(pristine["spacegroup"])[rows].astype(int),
            "defect": np.array([job[3] for job in jobs]), "level": np.array([job[5] for job in jobs]),
            "level_index": np.array([job[4] for job in jobs]), "spglib": found, "symprecs": tuple(symprecs),
            "seed": int(seed), "reused": int(sum(r is not None for r in rows_known))}


RUNS_FILE = "robustness_03.npz"
_RUN_ARRAYS = ("X", "parent", "label", "spacegroup", "defect", "level", "level_index", "spglib")


def save_runs(runs: dict, params: dict, inputs=()) -> "Path":
    """Keep a run of :func:`run_defects` (notebook 03's) in data/ with its provenance, for notebook 07 to reuse."""
    from . import config, provenance

    meta = provenance.record(provenance.NOTEBOOK_03, params, inputs=inputs, fingerprint=True, kind="robustness",
                             seed=int(runs["seed"]), symprecs=list(runs["symprecs"]))
    return provenance.save_npz(config.data_dir() / RUNS_FILE, {k: runs[k] for k in _RUN_ARRAYS}, meta)


def load_runs(expect: dict | None = None) -> dict | None:
    """Notebook 03's run of :func:`run_defects` (:func:`save_runs`), checked like every data file, or None when there
    is none or it is stale (then everything is computed)."""
    from . import config, provenance

    try:
        arrays, meta = provenance.load_npz(config.data_dir() / RUNS_FILE, provenance.NOTEBOOK_03, expect)
    except (FileNotFoundError, provenance.StaleDataError):
        return None
    return {**arrays, "seed": meta.get("seed"), "symprecs": tuple(meta.get("symprecs", ()))}


def score(runs: dict, predicted: np.ndarray, entropy: np.ndarray | None = None,
          mutual_information: np.ndarray | None = None, beyond_levels=()):
    """Per-structure and per-level results as pandas DataFrames (per structure, per level). ``beyond_levels``:
    the (defect, level) pairs past the paper's (:func:`defect_levels`), marked in the column
    ``beyond_paper`` of the per-level table."""
    import pandas as pd

    class_names = np.array(CLASSES)
    per = pd.DataFrame({"parent": runs["parent"], "class": class_names[runs["label"]], "defect": runs["defect"],
                        "level": runs["level"], "cnn_predicted": class_names[np.asarray(predicted)],
                        "cnn_right": np.asarray(predicted) == runs["label"]})
    ran = runs["spglib"][:, 0] >= 0
    for k, s in enumerate(runs["symprecs"]):
        per[f"spglib_{s:g}"] = runs["spglib"][:, k]
        per[f"spglib_{s:g}_right"] = pd.array([spglib_right(f, p, c) if r else pd.NA for f, p, c, r in
                                               zip(runs["spglib"][:, k], runs["spacegroup"], per["class"], ran)],
                                              dtype="boolean")
    if entropy is not None:
        per["predictive_entropy"] = entropy
    if mutual_information is not None:
        per["mutual_information"] = mutual_information
    agg = {"n": ("cnn_right", "size"), "cnn": ("cnn_right", "mean"),
           "n_spglib": (f"spglib_{runs['symprecs'][0]:g}_right", "count")}
    agg.update({f"spglib_{s:g}": (f"spglib_{s:g}_right", "mean") for s in runs["symprecs"]})
    if entropy is not None:
        agg["mean_entropy"] = ("predictive_entropy", "mean")
    if mutual_information is not None:
        agg["mean_mutual_information"] = ("mutual_information", "mean")
    order = {"none": 0, "vacancies": 1, "displacements": 2}
    table = (per.groupby(["defect", "level"], sort=False).agg(**agg).reset_index()
             .sort_values(["defect", "level"], key=lambda s: s.map(order) if s.name == "defect" else s,
                          kind="stable")
             .reset_index(drop=True))
    for s in runs["symprecs"]:  # plain floats: NaN where spglib was not run at a level (past the paper's)
        table[f"spglib_{s:g}"] = table[f"spglib_{s:g}"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    beyond = {(str(d), round(float(v), 9)) for d, v in beyond_levels}
    table["beyond_paper"] = [(d, round(float(v), 9)) in beyond for d, v in zip(table.defect, table.level)]
    return per, table


def paper_rows(table):
    """The rows of a robustness table at the paper's levels (pristine included), without the range past them."""
    return table[~table["beyond_paper"]] if "beyond_paper" in table.columns else table


def breaking_points(table, threshold: float = BROKEN) -> dict:
    """{defect: the lowest level at which the CNN's accuracy is below ``threshold``, or None where it never is}."""
    out = {}
    for defect in ("vacancies", "displacements"):
        t = table[(table.defect == defect) & (table.cnn < threshold)]
        out[defect] = float(t.level.min()) if len(t) else None
    return out


def level_text(defect: str, level: float) -> str:
    """A defect level in words: "—" for pristine, "25 % of atoms", "σ = 2 % of NN"."""
    return ("—" if defect == "none" else f"{100 * level:g} % of atoms" if defect == "vacancies"
            else f"σ = {100 * level:g} % of NN")


def render_table(table, accuracy: dict, uncertainty: dict, n_header: str = "n") -> str:
    """A robustness table (one row per defect level) in Markdown (``DataFrame.to_markdown``): defect, level, the
    number of structures, then the ``accuracy`` columns ({column: header}) in per cent, spglib's count and its
    accuracy at every tolerance, and the ``uncertainty`` columns ({column: header}, those present) in nats."""
    import pandas as pd

    from .config import percent

    spglib = [c for c in table.columns if c.startswith("spglib_")]
    out = pd.DataFrame({
        "defect": ["pristine" if d == "none" else d for d in table["defect"]],
        "level": [level_text(d, v) + (" (past the paper)" if b else "") for d, v, b in
                  zip(table["defect"], table["level"],
                      table["beyond_paper"] if "beyond_paper" in table.columns else [False] * len(table))],
        n_header: table["n"].astype(int).astype(str),
        **{header: table[column].map(percent) for column, header in accuracy.items()},
        "n (spglib)": table["n_spglib"].astype(int).astype(str),
        **{f"spglib symprec {c.split('_', 1)[1]} Å": table[c].map(percent) for c in spglib},
        **{header: table[column].map(lambda v: f"{v:.4f}") for column, header in uncertainty.items()
           if column in table}})
    return out.to_markdown(index=False, disable_numparse=True) + "\n"


def table_markdown(table) -> str:
    """The robustness table in the layout of the paper's Table 1: accuracy in per cent."""
    return render_table(table, {"cnn": "CNN"}, {"mean_entropy": "mean predictive entropy (nats)",
                                                 "mean_mutual_information": "mean mutual information (nats)"},
                        n_header="n (CNN)")


def study_size(n_test_per_class: int, n_per_class: int | None = None, n_spglib_per_class: int | None = None,
               most: int = 100, spglib_share: int = 5) -> tuple:
    """How many held-out parents per class the robustness study uses, and spglib checks of those: the values
    given, or (None) half of the held-out parents, at most ``most``, and a ``spglib_share``-th of those, at least
    one. At notebook 01's default of 200 held-out parents per class that is 100 and 20 (03's paper-size study); a
    smaller data set gives a smaller study, so its cost shrinks with the data."""
    n = int(n_per_class) if n_per_class is not None else max(1, min(int(most), int(n_test_per_class) // 2))
    k = int(n_spglib_per_class) if n_spglib_per_class is not None else max(1, n // int(spglib_share))
    if n < 1 or k < 0:
        raise ValueError(f"the robustness study needs at least 1 parent per class and no negative spglib count, "
                         f"got {n} and {k}")
    return n, min(k, n)


def robustness_sentences(robustness) -> list:
    """What the robustness table says, per defect kind, computed from it: the range of the CNN's accuracy and of
    spglib's at each tolerance, and at how many levels the CNN is ahead of both."""
    from .config import percent

    spglib = [c for c in robustness.columns if c.startswith("spglib_")]
    full, robustness = robustness, paper_rows(robustness)
    out = []
    for defect in ("vacancies", "displacements"):
        t = robustness[robustness.defect == defect]
        if t.empty:
            continue
        ranges = "; ".join(f"spglib at symprec {c.split('_', 1)[1]} Å from {percent(t[c].min())} to {percent(t[c].max())}"
                           for c in spglib)
        ahead = int(np.sum(np.all([t.cnn.to_numpy() > t[c].to_numpy() for c in spglib], axis=0)))
        levels = f"{len(t)} level{'s' if len(t) > 1 else ''}"
        out.append(f"{defect}: the CNN from {percent(t.cnn.min())} to {percent(t.cnn.max())} over {levels}; {ranges}; "
                   f"the CNN ahead of spglib at both tolerances at {ahead} of the {levels}.")
    defective = robustness[robustness.defect != "none"]
    if len(defective):
        near = defective[defective.cnn >= 0.99]
        below = ", ".join(f"{r.defect} {level_text(r.defect, r.level)} ({percent(r.cnn)})"
                          for r in defective[defective.cnn < 0.99].itertuples())
        out.append(f"the paper's claim, the CNN near 100 % under defects: {len(near)} of the {len(defective)} defect "
                   f"levels at 99 % or more" + (f"; below: {below}." if below else "."))
    beyond = full[full["beyond_paper"].astype(bool)] if "beyond_paper" in full.columns else full.iloc[:0]
    if len(beyond):
        broken = breaking_points(full)
        for defect in ("vacancies", "displacements"):
            t = beyond[beyond.defect == defect]
            if t.empty:
                continue
            where = ", ".join(f"{level_text(defect, r.level)} {percent(r.cnn)}" for r in t.itertuples())
            first = broken[defect]
            out.append(f"past the paper's levels, {defect} (the CNN alone; spglib already fails at the paper's first "
                       f"level): {where}; " + (f"the CNN first falls below {BROKEN:.0%} at {level_text(defect, first)}."
                                              if first is not None else
                                              f"the CNN stays at {BROKEN:.0%} or more at every level tried."))
    return out
