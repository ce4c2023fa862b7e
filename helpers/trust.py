"""When an answer is not to be trusted: a threshold on the mutual information of Monte-Carlo dropout, calibrated on
held-out crystals, and stored with the model it belongs to.

The mutual information of an answer (nats, :func:`helpers.models.mc_dropout`) is the part of its uncertainty that
comes from the dropout passes (and, for the orientation-free model, the views) disagreeing: it grows where the
network meets something unlike its training data. Its threshold is the ``quantile`` (default 99.5 %) of the mutual
information of held-out crystals at the paper's defect levels (pristine, vacancies up to 50 %, displacements up to
σ = 8 % of the nearest-neighbour distance), answered the way ``classify`` answers: so about 0.5 % of such
crystals are marked untrusted, and a structure the network is less sure of than 99.5 % of them is. Notebook 03
calibrates the paper's model, notebook 07 the orientation-free one (each on its own held-out copies), and writes the
threshold into the model's metadata file (:func:`record`), where ``classify`` reads it (:func:`threshold_of`).
"""
from __future__ import annotations

import json
import math

import numpy as np

from . import provenance

#: share of held-out crystals at the paper's defect levels whose answer stays trusted
TRUST_QUANTILE = 0.995


def calibrate(mutual_information, quantile: float = TRUST_QUANTILE, **basis) -> dict:
    """The threshold of trust from held-out answers.

    Parameters
    ----------
    mutual_information : array_like
        Mutual information (nats) of the answers to held-out crystals, one per structure.
    quantile : float
        Share of those answers that stay trusted, in (0, 1].
    **basis
        What the answers were (n_mc, views, pool, levels...), kept in the record.

    Returns
    -------
    dict
        ``mutual_information`` (the threshold, nats), ``quantile``, ``n`` (answers it was computed from), ``largest``
        (the largest held-out mutual information) and ``basis``.
    """
    mi = np.asarray(mutual_information, dtype=np.float64).ravel()
    if not 0.0 < float(quantile) <= 1.0:
        raise ValueError(f"quantile must lie in (0, 1], got {quantile!r}")
    if mi.size == 0 or not np.all(np.isfinite(mi)):
        raise ValueError(f"need finite mutual information of at least one held-out answer, got {mi.size} values "
                         f"({int(np.sum(~np.isfinite(mi)))} not finite)")
    return {"mutual_information": float(np.quantile(mi, quantile)), "quantile": float(quantile), "n": int(mi.size),
            "largest": float(mi.max()), "basis": basis}


def record(kind: str, calibration: dict, directory=None) -> dict:
    """Write ``calibration`` (:func:`calibrate`) into the metadata file of the saved model of ``kind`` (through a
    temporary file and a rename; the model file itself is untouched, so its checks still hold). Returns it."""
    from . import models

    meta = models.check_saved_model(directory, kind)[1]
    meta["trust"] = calibration
    meta_path = models.model_paths(directory, kind)[1]
    provenance.write_text(meta_path, json.dumps(meta, indent=1, sort_keys=True, default=provenance.jsonable))
    return calibration


def threshold_of(meta: dict | None) -> float | None:
    """The calibrated mutual-information threshold in a model's metadata, or None when it has none (a model saved
    before calibration, or one passed by hand)."""
    value = ((meta or {}).get("trust") or {}).get("mutual_information")
    return None if value is None or not math.isfinite(float(value)) else float(value)


def check_threshold(value) -> float | None:
    """``value`` as a threshold (a finite number >= 0, or None); a ValueError naming the fix otherwise."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"trust_threshold must be a number of nats (or None), got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"trust_threshold must be a finite number of nats >= 0, got {value!r}")
    return value


def sentence(calibration: dict, model_name: str) -> str:
    """What the threshold is and how it was found, in words, from the record."""
    return (f"{model_name}: an answer is marked untrusted above a mutual information of "
            f"{calibration['mutual_information']:.4f} nats, the {100 * calibration['quantile']:g} % quantile over "
            f"{calibration['n']} held-out crystals at the paper's defect levels (the largest: "
            f"{calibration['largest']:.4f} nats).")


def sentences(calibration: dict, model_name: str, mutual_information, right, calibrated) -> list:
    """What the threshold marks, in words computed from the answers it was calibrated on and the others.

    Parameters
    ----------
    calibration : dict
        From :func:`calibrate`.
    model_name : str
        The model, as the sentences name it.
    mutual_information : array_like
        Mutual information of every answer of the study (nats).
    right : array_like of bool
        Whether each answer named the right class.
    calibrated : array_like of bool
        Which answers the threshold was calibrated on (the paper's defect levels); the others lie past them.

    Returns
    -------
    list of str
    """
    mi = np.asarray(mutual_information, dtype=np.float64)
    right = np.asarray(right, dtype=bool)
    calibrated = np.asarray(calibrated, dtype=bool)
    if not (mi.shape == right.shape == calibrated.shape):
        raise ValueError(f"one value per answer: got {mi.shape}, {right.shape} and {calibrated.shape}")
    marked = mi > calibration["mutual_information"]
    out = [sentence(calibration, model_name),
           f"At the paper's levels it marks {int(marked[calibrated].sum())} of {int(calibrated.sum())} answers "
           f"({100 * marked[calibrated].mean():.2f} %)."]
    beyond = ~calibrated
    if beyond.any():
        out.append(f"Past them it marks {int(marked[beyond].sum())} of {int(beyond.sum())} "
                   f"({100 * marked[beyond].mean():.2f} %).")
    wrong = ~right
    if wrong.any():
        out.append(f"Of the {int(wrong.sum())} wrong answers it marks {int(marked[wrong].sum())} "
                   f"({100 * marked[wrong].mean():.1f} %); of the {int(right.sum())} right ones, "
                   f"{int(marked[right].sum())} ({100 * marked[right].mean():.2f} %).")
    else:
        out.append("No answer was wrong, so there is no mistake for it to mark.")
    return out
