"""Training-time augmentation of pristine fingerprints (notebook 07), from the physics of the fingerprint.

Two transformations, both drawn per fingerprint and per batch, neither using any defective structure:

* **Exact detector symmetries.** Turning the crystal by 90° about the beam turns every channel's image by 90°
  and swaps the R and G channels (rotations about x become rotations about y); mirroring the crystal mirrors
  the image (Friedel's law makes the mirror image a rotated crystal for the intensities). These 8 maps (the
  group D4) therefore give the fingerprints of other, equally likely random orientations of the same crystal;
  ``tests/test_augment.py`` checks them against fingerprints computed from the turned crystal.
* **Diffuse background.** Missing atoms (and, less, displaced ones) add Laue diffuse scattering under the Bragg
  peaks. Its mean is smooth, the solid angle times the squared form factor, Omega(p) f(|q|)^2, but a finite sample
  turns it into *speckle*: the scattering of the randomly placed defects is a sum of many random phasors, so its
  intensity at one pixel is exponentially distributed about that mean, and a channel (the sum of two patterns,
  the structure turned by -45 and +45 degrees) follows Gamma(2) with mean 1 (relative spread 0.71; speckles are
  about one pixel wide, so pixels are independent). With random orientation the peaks of a cut are often weak, so
  this background changes what the network sees, and a speckled background, unlike a smooth one, looks like
  peaks. Adding Omega f^2 times Gamma(2) noise at a random level (log-uniform, 1e-4 to 5e-2 of the brightest peak)
  to half of the training fingerprints, then normalising again, teaches the network to ignore it.
  ``tests/test_augment.py`` checks the mean and the spread against fingerprints of a crystal with vacancies;
  ``make recipe`` measures what each addition does to the accuracy.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .fingerprint import solid_angle_image, detector_q, form_factor, pixel_offsets

D4_VIEWS = tuple((k, mirror) for k in range(4) for mirror in (False, True))  # the 8 (turns, mirror) of d4
BACKGROUND_RANGE = (1e-4, 5e-2)
BACKGROUND_PROBABILITY = 0.5
SPECKLE_SHAPE = 2.0  # Gamma shape of a channel's diffuse intensity: the sum of two exponential speckle patterns


def d4(X: np.ndarray, k: int, mirror: bool) -> np.ndarray:
    """The fingerprint(s) X (..., 64, 64, 3) of the crystal mirrored (if ``mirror``) and then turned k x 90°
    about the beam."""
    Y = np.flip(X, axis=-2) if mirror else X
    Y = np.rot90(Y, k, axes=(-3, -2))
    if k % 2:
        Y = Y[..., [1, 0, 2]]
    return np.ascontiguousarray(Y)


@lru_cache(maxsize=None)
def diffuse_background(element: str) -> np.ndarray:
    """Omega(p) f(|q|)^2 of ``element`` on the kept ring, (64, 64) float32 with maximum 1."""
    o = pixel_offsets()
    q, _ = detector_q(o[None, :], o[:, None])
    b = solid_angle_image() * form_factor(str(element), np.linalg.norm(q, axis=-1)) ** 2  # zero off the ring
    return (b / b.max()).astype(np.float32)


def add_background(x: np.ndarray, element: str, level: float, rng: np.random.Generator) -> np.ndarray:
    """x plus a speckled diffuse background: ``level`` times the element's Omega f^2 times independent
    Gamma(2) noise of mean 1 at every pixel and channel, normalised to maximum 1 again (as the fingerprint
    itself is)."""
    speckle = rng.gamma(SPECKLE_SHAPE, 1.0 / SPECKLE_SHAPE, size=x.shape).astype(np.float32)
    y = x + np.float32(level) * diffuse_background(element)[..., None] * speckle
    return (y / y.max()).astype(np.float32)


def augment_batch(X: np.ndarray, elements, rng: np.random.Generator) -> np.ndarray:
    """A random D4 map for every fingerprint, and a speckled diffuse background of random level for about half."""
    out = np.empty_like(X)
    n = len(X)
    ks, mirrors = rng.integers(0, 4, n), rng.integers(0, 2, n)
    lo, hi = np.log(BACKGROUND_RANGE[0]), np.log(BACKGROUND_RANGE[1])
    levels = np.exp(rng.uniform(lo, hi, n)) * (rng.random(n) < BACKGROUND_PROBABILITY)
    for i in range(n):
        x = add_background(X[i], elements[i], levels[i], rng) if levels[i] > 0 else X[i]
        out[i] = d4(x, int(ks[i]), bool(mirrors[i]))
    return out


def batches(X: np.ndarray, Y: np.ndarray, elements, batch_size: int, seed: int):
    """A Keras ``PyDataset`` of augmented, shuffled batches; a new order and new draws every epoch,
    reproducible from ``seed``."""
    import keras

    class AugmentedBatches(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng([seed, 11])
            self.order = self.rng.permutation(len(X))

        def __len__(self):
            return math.ceil(len(X) / batch_size)

        def __getitem__(self, i):
            idx = self.order[i * batch_size:(i + 1) * batch_size]
            return augment_batch(X[idx], [elements[j] for j in idx], self.rng), Y[idx]

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(X))

    return AugmentedBatches()
