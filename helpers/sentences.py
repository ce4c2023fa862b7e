"""Sentences of the notebooks that state a measured fact, made from the numbers they state.

A word that makes a claim ("most", "closest to its own class", "identical", "more alike") is chosen by checking the
number behind it, so the sentence changes when the number does; nothing of the kind is typed into a notebook's text.
``tests/test_sentences.py`` holds each wording to its condition.
"""
from __future__ import annotations

import numpy as np

#: The share of map weight on peak pixels, as a multiple of an even spread, that counts as "looking at the peaks"
#: (the course's target for the attentive response maps of notebook 04).
PEAK_FACTOR = 3.0


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def peak_share(layer: str, shares, even) -> str:
    """Where a layer's back-projected maps put their positive weight: ``shares`` are the shares on the input's peak
    pixels of its top filters' maps, ``even`` the share those pixels have of the ring (what an even spread puts on
    them): one number, or one per share (each map's own input)."""
    shares = np.asarray(shares, float)
    even = np.broadcast_to(np.asarray(even, float), shares.shape)
    mean, ratios = float(shares.mean()), shares / even
    ratio, low_ratio = float(ratios.mean()), float(ratios.min())
    where = (f"{_pct(mean)} of its weight on the peaks, {ratio:.1f} × an even spread ({_pct(float(even.mean()))}"
             + (" on average)" if np.ptp(even) > 0 else ")"))
    if mean > 0.5:
        verdict = f"puts most of its weight on the peaks: {where}"
    elif ratio >= PEAK_FACTOR:
        verdict = f"looks at the peaks more than at the rest of the ring, though most of its weight lies off them: {where}"
    elif ratio > 1.0:
        verdict = f"leans to the peaks only weakly, below {PEAK_FACTOR:g} × an even spread: {where}"
    else:
        verdict = f"does not look at the peaks more than at the rest of the ring: {where}"
    every = ("every top filter reaches" if low_ratio >= PEAK_FACTOR else
             f"not every top filter reaches (the lowest is at {low_ratio:.1f} ×)")
    return f"`{layer}` {verdict}; {every} {PEAK_FACTOR:g} × an even spread."


def templates_own_class(similarity, class_names) -> str:
    """``similarity[t, c]``: cosine of class t's template with class c's mean fingerprint."""
    similarity = np.asarray(similarity, float)
    best = similarity.argmax(axis=1)
    own = np.flatnonzero(best == np.arange(len(class_names)))
    others = [f"{class_names[t]} (closest to {class_names[best[t]]})" for t in range(len(class_names)) if best[t] != t]
    if not others:
        return (f"Every class template is closest to its own class's mean fingerprint ({len(own)} of "
                f"{len(class_names)}): each class's template follows that class's spots.")
    return (f"Only {len(own)} of {len(class_names)} class templates are closest to their own class's mean fingerprint; "
            f"the others: {', '.join(others)}. Those templates do not single out their class's spots.")


def class_correlations(class_names, within, within_turned, between) -> str:
    """Notebook 02's orientation table in words: mean correlations between two parents of one class in the
    standard orientation (``within``) and randomly turned (``within_turned``), and between parents of two classes
    (``between``), per class."""
    within, within_turned, between = (np.asarray(a, float) for a in (within, within_turned, between))
    lo, hi = int(np.nanargmin(within)), int(np.nanargmax(within))
    alike = [class_names[c] for c in range(len(class_names)) if within[c] > between[c]]
    text = (f"In the standard orientation two parents of one class correlate by r = {np.nanmean(within):.2f} on "
            f"average, from {within[lo]:.2f} ({class_names[lo]}) to {within[hi]:.2f} ({class_names[hi]}); a parent "
            f"and one of the next class by {np.nanmean(between):.2f}. ")
    if len(alike) == len(class_names):
        text += "Every class's parents are more alike among themselves than to the next class's. "
    else:
        unlike = [c for c in class_names if c not in alike]
        text += (f"The parents of {len(alike)} of {len(class_names)} classes are more alike among themselves than to "
                 f"the next class's; not those of {', '.join(unlike)}. ")
    turned = np.nanmean(within_turned)
    text += (f"Turned at random, two parents of one class correlate by {turned:.2f}, "
             + ("less than parents of two classes in the standard orientation: the class's pattern is gone."
                if turned < np.nanmean(between) else
                "no less than parents of two classes in the standard orientation: some of the pattern survives."))
    return text


def tables_identical(pristine, vacancies, accuracy_pristine: float, accuracy_vacancies: float) -> str:
    """Tables 3 and 4 (confusion matrices of the pristine and the vacancy set) compared cell by cell."""
    a, b = np.asarray(pristine), np.asarray(vacancies)
    differ = int(np.sum(a != b)) if a.shape == b.shape else a.size
    if differ == 0:
        return (f"In this run Tables 3 and 4 are identical: the network names the structures of both sets the same "
                f"way ({_pct(accuracy_pristine)} and {_pct(accuracy_vacancies)} right). They come from two files, so "
                "identical tables alone do not show that one file was used twice, as in the course report; a "
                "mistake on either set would make them differ.")
    return (f"In this run Tables 3 and 4 differ in {differ} of {a.size} cells ({_pct(accuracy_pristine)} against "
            f"{_pct(accuracy_vacancies)} right): each is computed from its own file.")
