"""How alike two fingerprints are (notebook 02): Pearson correlation over all pixels, and its mean within and
between classes."""
from __future__ import annotations

import numpy as np


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two fingerprints over all their pixels and channels."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"fingerprints of different sizes: {a.size} and {b.size} values")
    return float(np.corrcoef(a, b)[0, 1])


def paired_correlations(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Correlation of X[i] with Y[i] for every i (two arrays of fingerprints of the same length)."""
    X, Y = np.asarray(X), np.asarray(Y)
    if len(X) != len(Y):
        raise ValueError(f"{len(X)} fingerprints against {len(Y)}: pass two arrays of the same length")
    return np.array([correlation(x, y) for x, y in zip(X, Y)])


def class_correlations(X: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple:
    """(within, between): per class, the mean correlation between consecutive fingerprints of the class (two
    different structures of one class), and between each fingerprint of the class and one of the next class at
    the same position; NaN where a class has fewer than two structures."""
    labels = np.asarray(labels)
    members = [np.flatnonzero(labels == c) for c in range(n_classes)]
    within, between = np.full(n_classes, np.nan), np.full(n_classes, np.nan)
    for c, idx in enumerate(members):
        if len(idx) > 1:
            within[c] = paired_correlations(X[idx[:-1]], X[idx[1:]]).mean()
        other = members[(c + 1) % n_classes]
        n = min(len(idx), len(other))
        if n and (c + 1) % n_classes != c:
            between[c] = paired_correlations(X[idx[:n]], X[other[:n]]).mean()
    return within, between
