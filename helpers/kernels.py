"""The fingerprint's inner loop, compiled with numba: the sum over atoms of exp(-i q.x) on the D4 pixel orbits.

numpy evaluates it in passes (phases, then sines, then cosines, then a batched product), each reading and writing
arrays of (orbit rows x atoms) values; here one loop computes each atom's three phases, their sines and cosines and
adds the eight products into its sums while everything stays in registers. Sine and cosine are the classic
single-precision method (Cody-Waite reduction by pi/2 with a three-part constant, then minimax polynomials on
[-pi/4, pi/4], as in the Cephes library): |error| < 2e-7 for phases up to 10^4 rad, against ~1e-5 from rounding the
phase itself to float32. Atoms are taken ``LANES`` at a time with one accumulator per lane, so the compiler can
vector the loop without reordering any floating-point sum; ``fastmath={"contract"}`` only allows fused
multiply-adds. Compiled once per machine and cached beside this file (``cache=True``).
"""
from __future__ import annotations

import numpy as np
from numba import njit, types

LANES = 16  # atoms per vector step; the atom count is padded to a multiple of it (weight 0)

_PIO2_1 = np.float32(1.5703125)  # pi/2 = _PIO2_1 + _PIO2_2 + _PIO2_3, the first two exact in a few bits
_PIO2_2 = np.float32(4.837512969970703125e-4)
_PIO2_3 = np.float32(7.54978995489188216e-8)
_TWO_OVER_PI = np.float32(0.6366197723675814)
_ROUND = np.float32(12582912.0)  # 1.5 * 2**23: (x + _ROUND) - _ROUND rounds x to the nearest integer
_S1, _S2, _S3 = np.float32(-1.6666654611e-1), np.float32(8.3321608736e-3), np.float32(-1.9515295891e-4)
_C1, _C2, _C3 = np.float32(4.166664568298827e-2), np.float32(-1.388731625493765e-3), np.float32(2.443315711809948e-5)
_ZERO, _HALF, _ONE, _TWO, _THREE, _FOUR, _QUARTER = (np.float32(v) for v in (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 0.25))
_FLAGS = {"contract"}


@njit(inline="always", fastmath=_FLAGS, cache=True)
def sincos(x):
    """(sin x, cos x) of a float32, to within 2e-7 for |x| < 1e4."""
    k = (x * _TWO_OVER_PI + _ROUND) - _ROUND
    r = ((x - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3
    z = r * r
    s = r + r * z * (_S1 + z * (_S2 + z * _S3))
    c = _ONE - _HALF * z + z * z * (_C1 + z * (_C2 + z * _C3))
    q = k - _FOUR * np.floor(k * _QUARTER)  # quadrant 0..3
    odd = (q == _ONE) | (q == _THREE)
    sn = c if odd else s
    cs = s if odd else c
    if q >= _TWO:
        sn = -sn
    if (q == _ONE) | (q == _TWO):
        cs = -cs
    return sn, cs


@njit(fastmath=_FLAGS, cache=True)
def sincos_array(x):
    """:func:`sincos` over a float32 array (for tests)."""
    s = np.empty_like(x)
    c = np.empty_like(x)
    for i in range(x.size):
        s[i], c[i] = sincos(x[i])
    return s, c


_F32_2D, _F64_2D = types.float32[:, ::1], types.float64[:, ::1]


# Signatures given: compiled (or loaded from the cache) when this module is imported, so worker processes that a
# pool forks from a server that imported it start with the machine code ready.
@njit((_F32_2D, _F32_2D, _F32_2D, types.float32[:, :, ::1]), fastmath=_FLAGS, cache=True, error_model="numpy")
def orbit_sums(qrows, xyz_t, weights, sums):
    """For every orbit row m (three phase rows ``qrows[3m: 3m + 3]`` of the form (a, 0, c), (b, 0, c'), (0, d, 0)),
    ``sums[m, r, l]`` = sum over atoms j of w_j L_r(j) R_l(j), with L = (cos, sin) of the first phase row, then of
    the second, and R = (cos, sin) of the third. ``xyz_t``: (3, n) float32 positions, n a multiple of ``LANES``;
    ``weights``: (1, n) shared by every row or (rows, n), zero for padding atoms."""
    n_rows = sums.shape[0]
    n = xyz_t.shape[1]
    multi = weights.shape[0] > 1
    acc = np.zeros((8, LANES), np.float32)
    for m in range(n_rows):
        ax, az = qrows[3 * m, 0], qrows[3 * m, 2]
        bx, bz = qrows[3 * m + 1, 0], qrows[3 * m + 1, 2]
        dy = qrows[3 * m + 2, 1]
        w = weights[m] if multi else weights[0]
        acc[:] = _ZERO
        for j0 in range(0, n, LANES):
            for lane in range(LANES):
                j = j0 + lane
                x, y, z = xyz_t[0, j], xyz_t[1, j], xyz_t[2, j]
                s0, c0 = sincos(ax * x + az * z)
                s1, c1 = sincos(bx * x + bz * z)
                s2, c2 = sincos(dy * y)
                wj = w[j]
                c0 *= wj
                s0 *= wj
                c1 *= wj
                s1 *= wj
                acc[0, lane] += c0 * c2
                acc[1, lane] += c0 * s2
                acc[2, lane] += s0 * c2
                acc[3, lane] += s0 * s2
                acc[4, lane] += c1 * c2
                acc[5, lane] += c1 * s2
                acc[6, lane] += s1 * c2
                acc[7, lane] += s1 * s2
        for r in range(4):
            for side in range(2):
                total = _ZERO
                for lane in range(LANES):
                    total += acc[2 * r + side, lane]
                sums[m, r, side] = total


@njit((_F64_2D, _F64_2D, types.float64), cache=True)
def assign_to_centres(V, centres, reach):
    """Every vector of ``V`` (n, 3) joins its nearest centre (m, 3) within ``reach`` (float64 throughout).

    Returns (distance, label, count, sums, squares): distance to the nearest centre (inf beyond ``reach``), its
    index, and per centre the number of members, the sum of their vectors (m, 3) and of their squared distances."""
    n, m = V.shape[0], centres.shape[0]
    dist = np.empty(n)
    label = np.empty(n, np.int64)
    count = np.zeros(m, np.int64)
    sums = np.zeros((m, 3))
    squares = np.zeros(m)
    for i in range(n):
        best, arg = np.inf, 0
        for c in range(m):
            dx = V[i, 0] - centres[c, 0]
            dy = V[i, 1] - centres[c, 1]
            dz = V[i, 2] - centres[c, 2]
            d2 = dx * dx + dy * dy + dz * dz
            if d2 < best:
                best, arg = d2, c
        d = np.sqrt(best)
        label[i] = arg
        if d < reach:
            dist[i] = d
            count[arg] += 1
            sums[arg, 0] += V[i, 0]
            sums[arg, 1] += V[i, 1]
            sums[arg, 2] += V[i, 2]
            squares[arg] += best
        else:
            dist[i] = np.inf
    return dist, label, count, sums, squares


@njit((_F64_2D, _F64_2D, types.float64, types.int64), cache=True)
def neighbour_scan(atoms, images_t, cutoff, max_per_atom):
    """One pass over atoms (n, 3) and images (3, m): for every atom the distance to its nearest image other than
    itself (inf when none lies within ``cutoff``; 0 when another image sits on it, closer than 1e-6), and the
    vectors image - atom of length in (1e-6, cutoff): ``vectors`` (n, max_per_atom, 3), ``counts`` (n,).
    ``overflow`` is True when an atom had more than ``max_per_atom`` of them."""
    n, m = atoms.shape[0], images_t.shape[1]
    first = np.empty(n)
    vectors = np.empty((n, max_per_atom, 3))
    counts = np.zeros(n, np.int64)
    d2 = np.empty(m)
    cut2 = cutoff * cutoff
    overflow = False
    for i in range(n):
        x, y, z = atoms[i, 0], atoms[i, 1], atoms[i, 2]
        for j in range(m):
            dx = images_t[0, j] - x
            dy = images_t[1, j] - y
            dz = images_t[2, j] - z
            d2[j] = dx * dx + dy * dy + dz * dz
        best, on_top, k = cut2, 0, 0
        for j in range(m):
            if d2[j] < cut2:
                if d2[j] <= 1e-12:
                    on_top += 1
                    continue
                if d2[j] < best:
                    best = d2[j]
                if k < max_per_atom:
                    vectors[i, k, 0] = images_t[0, j] - x
                    vectors[i, k, 1] = images_t[1, j] - y
                    vectors[i, k, 2] = images_t[2, j] - z
                k += 1
        if k > max_per_atom:
            overflow = True
        counts[i] = min(k, max_per_atom)
        first[i] = 0.0 if on_top > 1 else (np.sqrt(best) if k > 0 else np.inf)
    return first, vectors, counts, overflow
