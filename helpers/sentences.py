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


#: The share of interior crystal atoms that the uncertainty flag may mark (notebook 08's target for the flag).
FALSE_ALARMS = 0.05


def interior_false_alarms(rows, hottest_rms: float, hottest: str, limit: float = FALSE_ALARMS) -> str:
    """Notebook 08's flag on the polycrystals' grain interiors, set against thermal motion. ``rows``: (sample,
    sigma in % of the NN distance, share of interior atoms flagged), ``hottest_rms``: the rms displacement per
    coordinate (same unit) of the hottest solid simulated in the same run, named by ``hottest``."""
    rows = [(s, float(sig), float(f)) for s, sig, f in rows if np.isfinite(f)]
    within = [r for r in rows if r[1] <= hottest_rms]
    beyond = [r for r in rows if r[1] > hottest_rms]
    over = [r for r in within if r[2] > limit]
    text = (f"The hottest solid simulated here ({hottest}) is displaced by {hottest_rms:.2f} % of the NN distance "
            "per coordinate. ")
    if within:
        worst = max(within, key=lambda r: r[2])
        if not over:
            text += (f"In every polycrystal displaced no more than that, at most {_pct(worst[2])} of the interior atoms "
                     f"are flagged ({worst[0]}, σ = {worst[1]:g} %), within the {_pct(limit)} allowed. ")
        else:
            text += ("In polycrystals displaced no more than that, the flag marks more than "
                     f"{_pct(limit)} of the interior atoms in {len(over)} of {len(within)}: "
                     + ", ".join(f"{s} at σ = {sig:g} % ({_pct(f)})" for s, sig, f in over)
                     + ": there it flags crystal that is right, a false alarm. ")
    if beyond:
        lo, hi = min(r[2] for r in beyond), max(r[2] for r in beyond)
        text += (f"The polycrystals at σ = {', '.join(f'{v:g}' for v in sorted({r[1] for r in beyond}))} % are "
                 f"displaced more than that solid; the flag marks {_pct(lo)} to {_pct(hi)} of their interior atoms: "
                 "it reports disorder beyond that solid's, not only liquid.")
    return text.strip()
