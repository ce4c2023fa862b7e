"""The network's answer averaged over random orientations of the same structure.

Under the any-orientation protocol (docs/science.md) one fingerprint is three cuts through the structure's
reciprocal lattice at an arbitrary angle; whether a cut meets the peaks that tell, say, a
distorted hcp from a bct lattice is luck. The class belongs to the structure, not to the cut, and
a structure can be turned at will: view 0 is the structure as given (its fingerprint may be passed
in), views 1, 2, ... are the same atoms turned rigidly by rotations drawn uniformly from SO(3).
The network, the fingerprint and the training are unchanged; only the number of fingerprints the
network sees per structure grows.

How the views' answers are combined (:func:`combine_views`): by default the *logarithmic* pool, the
normalised geometric mean of the views' probabilities, not their arithmetic mean. Each view is
evidence about the one class of the structure. Were the views independent given the class, Bayes'
rule with the balanced classes of training would make the posterior proportional to the product of
the views' probabilities, whose arg max is that of the mean log-probability. A cut that meets a
peak a class forbids gives that class almost zero, and the product keeps that veto while the
arithmetic mean dilutes it among the views that saw nothing telling. The views of one crystal are
not independent, so the product itself would be overconfident; its K-th root, normalised, keeps
the product's arg max with the calibration of one view. How the two pools compare is measured, not
assumed: ``make seeds`` reports both for five training seeds and two held-out draws.

View k's rotation comes from ``seed`` and k alone, so view k is the same whatever the number of
views and whatever else is in the batch, and the same seed gives the same answer.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import Atoms

from . import models
from .fingerprint import diffraction_fingerprints
from .structures import random_rotation, rotate

#: Views per structure by default (07 and ``classify``); notebook 07 plots the accuracy against the number of views.
DEFAULT_ORIENTATIONS = 16

#: How the views' probabilities are combined: "log" (normalised geometric mean, the default) or "linear"
#: (arithmetic mean).
POOLS = ("log", "linear")
DEFAULT_POOL = "log"
_FLOOR = 1e-12  # a probability the float32 softmax rounded to 0 counts as 1e-12: a strong veto, not an infinite one


def check_pool(pool) -> str:
    """``pool`` if it is one of ``POOLS``; otherwise a ValueError that lists them."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    return pool


def combine_views(view_probabilities: np.ndarray, pool: str = DEFAULT_POOL) -> np.ndarray:
    """The answer of several views of each structure: (n_views, n, classes) -> (n, classes), rows summing to 1.

    ``pool="log"``: the normalised geometric mean (logarithmic opinion pool; see the module's docstring);
    ``pool="linear"``: the arithmetic mean. With one view both return that view's probabilities.
    """
    check_pool(pool)
    P = np.asarray(view_probabilities, dtype=np.float64)
    if P.ndim != 3 or P.shape[0] < 1 or P.shape[2] < 2:
        raise ValueError(f"view probabilities must have shape (n_views >= 1, n_structures, n_classes >= 2), "
                         f"got {P.shape}: pass the output of orientation_probabilities")
    if pool == "linear":
        return P.mean(axis=0)
    log_mean = np.log(np.maximum(P, _FLOOR)).mean(axis=0)
    q = np.exp(log_mean - log_mean.max(axis=1, keepdims=True))
    return q / q.sum(axis=1, keepdims=True)


def check_n_orientations(n_orientations) -> int:
    if isinstance(n_orientations, bool) or not isinstance(n_orientations, (int, np.integer)) or n_orientations < 1:
        raise ValueError(f"n_orientations must be a whole number of at least 1 (1: the structure as given only), "
                         f"got {n_orientations!r}")
    return int(n_orientations)


def view_rotation(view: int, seed: int = 0) -> np.ndarray:
    """The 3 x 3 rotation of view ``view``: the identity for view 0, otherwise drawn uniformly from
    SO(3) with ``seed`` and ``view`` alone. Every structure of a batch is turned by the same one, so a
    structure's answer does not depend on what else is classified with it (a structure in a random
    orientation turned by a fixed rotation is still in a random orientation)."""
    if isinstance(view, bool) or not isinstance(view, (int, np.integer)) or view < 0:
        raise ValueError(f"view must be a whole number >= 0, got {view!r}")
    if view == 0:
        return np.eye(3)
    return random_rotation(np.random.default_rng([int(seed), 99, int(view)]))


def view_fingerprints(structures: Sequence[Atoms], view: int, seed: int = 0, n_jobs: int | None = None,
                      progress: bool = False) -> np.ndarray:
    """Fingerprints (n, 64, 64, 3) of every structure turned by view ``view``'s rotation."""
    rotation = view_rotation(view, seed)
    return diffraction_fingerprints([rotate(a, rotation) for a in structures], n_jobs=n_jobs,
                                    progress=progress, desc=f"orientation {view}")


def view_features(model, structures: Sequence[Atoms], n_orientations: int = DEFAULT_ORIENTATIONS, seed: int = 0,
                  fingerprints: np.ndarray | None = None, n_jobs: int | None = None, progress: bool = False,
                  block: int = 256) -> np.ndarray:
    """The network's dense-128 features of every structure in every view: (n_orientations, n, 128), float64.

    Everything after these features is the small head (dropout, batch norm, softmax) that
    :func:`helpers.models.mc_dropout_samples` runs in numpy, so this is the whole cost of the views. Work is
    shared where the physics allows: each worker process takes a few structures and computes all their views
    (:func:`helpers.fingerprint.diffraction_fingerprint_views`: checks, scale and centring once per structure,
    since turning a structure changes none of them), and this process runs one forward pass per view, batched
    over the views of those structures, while the workers compute the next ones. Structures are taken
    ``block`` at a time, so memory does not grow with their number. ``fingerprints``: those of the structures as
    given (view 0), to save computing them again.
    """
    from functools import partial

    from tqdm.auto import tqdm

    from .fingerprint import SHAPE, views_chunk
    from .parallel import map_chunks

    structures = list(structures)
    if not structures:
        raise ValueError("no structures given: pass at least one ase.Atoms")
    n_views = check_n_orientations(n_orientations)
    if fingerprints is not None:
        fingerprints = models.check_fingerprints(fingerprints)
        if len(fingerprints) != len(structures):
            raise ValueError(f"{len(fingerprints)} fingerprints for {len(structures)} structures: pass the "
                             "fingerprints of these structures as given (view 0), in the same order, or None")
    first = 1 if fingerprints is not None else 0
    rotations = tuple(view_rotation(v, seed) for v in range(first, n_views))
    extractor = models.feature_model(model)
    out = np.empty((n_views, len(structures), extractor.output_shape[-1]))
    bar = tqdm(total=len(structures), desc=f"{n_views} views", unit="structure", disable=not progress)
    work = partial(views_chunk, rotations=rotations)
    for offset in range(0, len(structures), block):
        items = structures[offset: offset + block]
        chunks = map_chunks(work, items, n_jobs=n_jobs, chunk_size=4, progress=False) if rotations else [
            (s, items[s: s + 4], np.empty((len(items[s: s + 4]), 0) + SHAPE, np.float32))
            for s in range(0, len(items), 4)]
        for start, chunk, X in chunks:
            lo = offset + start
            if first:
                X = np.concatenate([fingerprints[lo: lo + len(chunk), None], X], axis=1)
            F = extractor.predict(X.reshape((-1,) + SHAPE), batch_size=256, verbose=0)
            out[:, lo: lo + len(chunk)] = np.asarray(F, np.float64).reshape(len(chunk), n_views, -1).transpose(1, 0, 2)
            bar.update(len(chunk))
    bar.close()
    return out


def orientation_probabilities(model, structures: Sequence[Atoms], n_orientations: int = DEFAULT_ORIENTATIONS,
                              seed: int = 0, fingerprints: np.ndarray | None = None, n_jobs: int | None = None,
                              progress: bool = True) -> np.ndarray:
    """Class probabilities of the network (no dropout) for every view, shape (n_orientations, n, classes).

    The answer combined over the orientations is ``combine_views(P)``; ``combine_views(P[:k])`` is that of the first
    k views. ``fingerprints``: those of the structures as given (view 0), to save recomputing them.
    """
    F = view_features(model, structures, n_orientations, seed, fingerprints, n_jobs, progress)
    n_views, n = F.shape[:2]
    return models.mc_dropout_samples(model, None, n_samples=1, rate=0.0,
                                     features=F.reshape(n_views * n, -1))[0].reshape(n_views, n, -1)


def orientation_mc_dropout(model, structures: Sequence[Atoms], n_orientations: int = DEFAULT_ORIENTATIONS,
                           n_samples: int = 50, seed: int = 0, fingerprints: np.ndarray | None = None,
                           n_jobs: int | None = None, progress: bool = False, pool: str = DEFAULT_POOL,
                           features: np.ndarray | None = None) -> dict:
    """:func:`helpers.models.mc_dropout` over views and dropout passes together.

    The ``n_samples`` passes (the same dropout masks for every view) times ``n_orientations`` views
    make one sample of the predictive distribution, from which come ``mean_probability`` (their
    arithmetic mean), ``predictive_entropy`` and ``mutual_information`` (which now also counts views
    that disagree: the answer's dependence on how the crystal happened to be turned). The answer is
    ``pooled_probability``: each view's mean over the passes, combined over the views by
    :func:`combine_views` with ``pool``; ``predicted`` is its arg max. Also ``probability`` (the
    deterministic answer combined over the views the same way) and ``view_probability``
    (deterministic, per view: (n_orientations, n, classes)). With one view this is exactly
    :func:`helpers.models.mc_dropout`. ``features``: those of :func:`view_features`, when already computed.
    """
    check_pool(pool)
    if features is None:
        features = view_features(model, structures, n_orientations, seed, fingerprints, n_jobs, progress)
    n_views, n = features.shape[:2]
    flat = features.reshape(n_views * n, -1)
    samples = models.mc_dropout_samples(model, None, n_samples=n_samples, seed=seed, features=flat)
    out = models.uncertainty(samples.reshape(n_samples * n_views, n, -1))
    out["pooled_probability"] = combine_views(samples.reshape(n_samples, n_views, n, -1).mean(axis=0), pool)
    out["predicted"] = out["pooled_probability"].argmax(axis=1)
    views = models.mc_dropout_samples(model, None, n_samples=1, rate=0.0, features=flat)[0].reshape(n_views, n, -1)
    out["view_probability"] = views
    out["probability"] = combine_views(views, pool)
    return out
