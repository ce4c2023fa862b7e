"""A slow, plainly correct diffraction fingerprint: the complex128 direct sum of Eq. 1-2.

Written independently of ``helpers.fingerprint`` (ASE's own rotation and neighbour list, every one
of the 64 x 64 pixels, all six rotations computed, no symmetry used) so that the fast path can be
held to it. Used by the tests and, for the reference rate, by the benchmark.
"""
import numpy as np
import xraydb
from ase.data import chemical_symbols
from ase.neighborlist import neighbor_list

LAMBDA = 5.0e-12  # m
DISTANCE = 0.1  # m
PIXEL = 0.4e-3  # m
NPIX = 64


def mean_nn_distance(atoms):
    cutoff = 2.0 * (atoms.get_volume() / len(atoms)) ** (1 / 3)
    while True:
        i, d = neighbor_list("id", atoms, cutoff, self_interaction=False)
        nn = np.full(len(atoms), np.inf)
        np.minimum.at(nn, i, d)
        if np.all(np.isfinite(nn)):
            return nn.mean()
        cutoff *= 1.5


def reference_fingerprint(atoms, nn_distance=None):
    """The fingerprint with the structure scaled by 1 / ``nn_distance`` (default: the mean over atoms of the
    shortest neighbour distance, which the fast path's estimate equals on a perfect crystal whose first
    shell does not split; pass the fast path's own estimate to compare any other structure)."""
    atoms = atoms.copy()
    atoms.positions *= 1.0 / (mean_nn_distance(atoms) if nn_distance is None else nn_distance)
    k = 2 * np.pi / (LAMBDA * 1e10)  # 1/Angstrom
    idx = np.arange(NPIX) - (NPIX - 1) / 2
    px, py = np.meshgrid(idx * PIXEL, idx * PIXEL)  # [row = y, column = x]
    r = np.sqrt(px**2 + py**2 + DISTANCE**2)
    q = np.stack([k * px / r, k * py / r, k * DISTANCE / r - k], axis=-1)  # k1 - k0
    qnorm = np.linalg.norm(q, axis=-1)
    omega = DISTANCE / r**3
    channels = []
    for axis in "xyz":
        total = np.zeros((NPIX, NPIX))
        for angle in (-45, 45):
            rotated = atoms.copy()
            rotated.rotate(angle, axis, center="COM")
            psi = np.zeros((NPIX, NPIX), dtype=np.complex128)
            for z in np.unique(rotated.numbers):
                x = rotated.positions[rotated.numbers == z]
                f = xraydb.f0(chemical_symbols[z], qnorm / (4 * np.pi))
                phase = np.einsum("abk,nk->abn", q, x)
                psi += f * np.exp(-1j * phase).sum(axis=-1)
            total += omega * np.abs(psi) ** 2
        channels.append(total)
    img = np.stack(channels, axis=-1)
    d = np.hypot(*np.meshgrid(idx, idx))
    img[(d <= 10) | (d >= 30)] = 0.0
    return ((img - img.min()) / (img.max() - img.min())).astype(np.float32)
