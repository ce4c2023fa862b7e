"""Crystals in any orientation (notebook 07): the steps of that chapter beyond the paper.

The paper's network (notebook 03) sees every crystal in its standard orientation, which only a crystal with a
lattice to align by has. Notebook 07 trains the same network on randomly oriented crystals, with three additions
(:mod:`helpers.augment`, :func:`helpers.models.train`) and the answer pooled over several views
(:mod:`helpers.orientations`), and compares it with the paper's model level by level. This module holds what it
needs beyond those: turning every structure its own way, the side-by-side robustness table, and the accuracy
against the number of views.
"""
from __future__ import annotations

import numpy as np

from .orientations import combine_views
from .robustness import render_table
from .structures import ball_cut, random_rotation, rotate


def clusters_of(blocks, n_atoms: int = 256) -> list:
    """A finite cluster of ``n_atoms`` atoms cut from the crystal of every periodic block (the block repeated
    2 x 2 x 2, then :func:`helpers.structures.ball_cut`), in the block's orientation: held-out clusters of the
    held-out parents."""
    return [ball_cut(b.repeat(2), n_atoms) for b in blocks]


def turn_each(structures, seed: int) -> list:
    """Every structure turned rigidly by its own rotation, drawn uniformly from SO(3) with ``seed`` and its index
    alone (the same seed, the same turns)."""
    return [rotate(a, random_rotation(np.random.default_rng([int(seed), 41, i]))) for i, a in enumerate(structures)]


def accuracy_by_views(view_probability: np.ndarray, y: np.ndarray, pool: str) -> np.ndarray:
    """Accuracy after combining the first k views, k = 1 ... n_views: (n_views,)."""
    y = np.asarray(y)
    return np.array([float(np.mean(combine_views(view_probability[:k], pool).argmax(axis=1) == y))
                     for k in range(1, len(view_probability) + 1)])


def robustness_table(runs: dict, paper_predicted: np.ndarray, view_probability: np.ndarray, mc: dict, pool: str):
    """Per structure and per level (pandas DataFrames): the paper's model on the aligned defective copies, the
    orientation-free model on the same copies turned (one view, and all views combined with ``pool``), spglib,
    and the Monte-Carlo-dropout uncertainty of the orientation-free model over its views.

    ``runs``: :func:`helpers.robustness.run_defects`; ``view_probability``: (n_views, n, classes) of the
    orientation-free model; ``mc``: :func:`helpers.orientations.orientation_mc_dropout` of the same views."""
    from .robustness import score

    per, _ = score(runs, paper_predicted, mc["predictive_entropy"], mc["mutual_information"])
    per = per.rename(columns={"cnn_predicted": "paper_predicted", "cnn_right": "paper_right"})
    y = np.asarray(runs["label"])
    per["one_view_right"] = view_probability[0].argmax(axis=1) == y
    per["views_right"] = combine_views(view_probability, pool).argmax(axis=1) == y
    per["mc_views_right"] = mc["predicted"] == y
    spglib = [c for c in per.columns if c.startswith("spglib_") and c.endswith("_right")]
    agg = {"n": ("paper_right", "size"), "paper_model_aligned": ("paper_right", "mean"),
           "one_view": ("one_view_right", "mean"), "views": ("views_right", "mean"),
           "n_spglib": (spglib[0], "count"),
           **{c[:-len("_right")]: (c, "mean") for c in spglib},
           "mean_entropy": ("predictive_entropy", "mean"),
           "mean_mutual_information": ("mutual_information", "mean")}
    order = {"none": 0, "vacancies": 1, "displacements": 2}
    table = (per.groupby(["defect", "level"], sort=False).agg(**agg).reset_index()
             .sort_values(["defect", "level"], key=lambda s: s.map(order) if s.name == "defect" else s, kind="stable")
             .reset_index(drop=True))
    return per, table


def table_markdown(table, n_views: int) -> str:
    """The side-by-side robustness table in Markdown: accuracies in per cent, uncertainties in nats."""
    return render_table(table, {"paper_model_aligned": "paper's model, aligned", "one_view": "any orientation, 1 view",
                                "views": f"any orientation, {n_views} views"},
                        {"mean_entropy": f"mean predictive entropy, {n_views} views (nats)",
                         "mean_mutual_information": f"mean mutual information, {n_views} views (nats)"})
