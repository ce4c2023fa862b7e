"""Two-dimensional diffraction fingerprint (Ziletti et al. 2018, Eq. 1-2 of the course report).

The numbers are those of ``docs/science.md``: plane wave along z with lambda = 5 pm, flat
64 x 64 detector of 0.4 mm pixels at 0.1 m, exact Ewald sphere, X-ray form factors from xraydb,
solid angle per pixel, rotations of -45 and +45 degrees about x, y and z summed into the R, G and B
channels, everything at distance <= 10 px or >= 30 px from the centre zeroed, and a global min-max
normalisation to [0, 1]. The structure is first scaled to a nearest-neighbour distance of 1 Angstrom
with an estimate that defects do not move (:func:`helpers.neighbours.nn_scale`).

How the fast path gets its speed (all exact, no approximation of the physics):

* Only the ring pixels (10 px < d < 30 px, 2512 of 4096) are ever computed.
* The pixel grid is symmetric under the eight operations of the square (the group D4). A pixel at
  offset (a, b) from the centre has the scattering vector q = (u, v, t) with u = k a p / r,
  v = k b p / r, t = k (D / r - 1); its seven partners (+-a, +-b), (+-b, +-a) share t and |u|, |v|.
  Since exp(-i q.x) = exp(-i t z) exp(-i u x) exp(-i v y), five sine/cosine pairs per orbit and atom
  give all eight pixels (instead of eight pairs); each atom adds eight products to its orbit's sums.
* Rz(-45 deg) is Rz(+45 deg) seen on the grid rotated by 90 deg, which maps pixels onto pixels, so
  the blue channel needs one pattern, not two: five patterns per structure instead of six.
* float32 arithmetic on structures centred on their centroid (a 256-atom block's phases stay below ~150 rad,
  where rounding the phase to float32 costs ~1e-5); the tests hold the result to a complex128 direct sum
  within 1e-4 on every pixel.
* The sum over atoms is one compiled loop (:mod:`helpers.kernels`, numba): phases, sines, cosines and the
  eight products of each atom stay in registers instead of passing through memory as numpy arrays.
* The batch function spreads chunks of structures over worker processes, one BLAS thread each.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from .kernels import LANES, orbit_sums
from .neighbours import SCALE_METHOD, nn_scale

# ---- the numbers of docs/science.md ------------------------------------------------------------
WAVELENGTH_M = 5.0e-12
DETECTOR_DISTANCE_M = 0.1
PIXEL_SIZE_M = 0.4e-3
N_PIXELS = 64
RING_INNER_PX = 10.0
RING_OUTER_PX = 30.0
ROTATION_DEG = 45.0
TARGET_NN_DISTANCE = 1.0  # Angstrom, after scaling
SHAPE = (N_PIXELS, N_PIXELS, 3)
MAX_Z_FORM_FACTOR = 98  # xraydb f0 tables go to californium

WAVENUMBER = 2.0 * math.pi / (WAVELENGTH_M * 1e10)  # 1/Angstrom: 125.66

FINGERPRINT_PARAMS = {
    "wavelength_m": WAVELENGTH_M,
    "detector_distance_m": DETECTOR_DISTANCE_M,
    "pixel_size_m": PIXEL_SIZE_M,
    "n_pixels": N_PIXELS,
    "ring_px": [RING_INNER_PX, RING_OUTER_PX],
    "rotation_deg": ROTATION_DEG,
    "nn_distance_angstrom": TARGET_NN_DISTANCE,
    "scale": SCALE_METHOD,
    "form_factor": "xraydb.f0(element, |q|/(4 pi))",
    "channels": "R: rotations about x, G: about y, B: about z",
}


# ---- detector geometry -----------------------------------------------------------------------
def pixel_offsets() -> np.ndarray:
    """Pixel centres in units of pixels from the detector centre: -31.5 ... 31.5."""
    return np.arange(N_PIXELS, dtype=np.float64) - (N_PIXELS - 1) / 2.0


def pixel_distance() -> np.ndarray:
    """(64, 64) distance of every pixel centre from the detector centre, in pixels."""
    o = pixel_offsets()
    return np.hypot(o[None, :], o[:, None])


def ring_mask() -> np.ndarray:
    """Boolean (64, 64) mask, True where the fingerprint is kept (10 px < d < 30 px)."""
    d = pixel_distance()
    return (d > RING_INNER_PX) & (d < RING_OUTER_PX)


def detector_q(offsets_x: np.ndarray, offsets_y: np.ndarray):
    """Exact Ewald-sphere scattering vectors for pixel offsets (in pixels).

    Returns (q, solid_angle) with q in 1/Angstrom, shape (..., 3): q = k1 - k0 with
    k1 = k (x, y, D) / |(x, y, D)| and k0 = (0, 0, k). The solid angle is that of a pixel of area
    p^2 seen at distance r under the angle with cos = D / r: p^2 D / r^3 (steradian).
    """
    x = np.asarray(offsets_x, dtype=np.float64) * PIXEL_SIZE_M
    y = np.asarray(offsets_y, dtype=np.float64) * PIXEL_SIZE_M
    d = DETECTOR_DISTANCE_M
    r = np.sqrt(x * x + y * y + d * d)
    q = np.stack([WAVENUMBER * x / r, WAVENUMBER * y / r, WAVENUMBER * (d / r - 1.0)], axis=-1)
    solid_angle = PIXEL_SIZE_M**2 * d / r**3
    return q, solid_angle


@lru_cache(maxsize=1)
def _orbits():
    """The D4 orbits of the ring pixels.

    Each orbit is represented by (a, b) with a >= b > 0 (offsets in pixels); orbits with a != b
    (eight pixels) come first, the diagonal ones (a == b, four pixels) last. Returns the
    representatives' q components u (along x for offset a), v, t, |q| per orbit, the number of
    off-diagonal orbits, and for the four sign combinations (s1, s2) = (+,+), (+,-), (-,+), (-,-)
    the flat indices into the 64 x 64 image of group 1 = (s1 a, s2 b) and group 2 = (s1 b, s2 a).
    """
    o = pixel_offsets()
    half = o[o > 0]  # 0.5 ... 31.5
    reps = [(a, b) for a in half for b in half if b <= a and RING_INNER_PX < math.hypot(a, b) < RING_OUTER_PX]
    reps.sort(key=lambda p: p[0] == p[1])  # stable: off-diagonal orbits first
    a = np.array([p[0] for p in reps])
    b = np.array([p[1] for p in reps])
    n_off = int(np.sum(a != b))
    q, _ = detector_q(a, b)
    centre = (N_PIXELS - 1) / 2.0

    def flat(ox, oy):  # row = y index, column = x index
        return np.rint(oy + centre).astype(np.int64) * N_PIXELS + np.rint(ox + centre).astype(np.int64)

    s1 = np.array([1, 1, -1, -1])[:, None]
    s2 = np.array([1, -1, 1, -1])[:, None]
    u, v, t = q[:, 0], q[:, 1], q[:, 2]
    zero = np.zeros_like(u)
    # Per orbit three phase rows: (+u x + t z), (-u x + t z), (v y) for group 1 = pixels (s1 a, s2 b);
    # the same with u and v swapped for group 2 = pixels (s1 b, s2 a), off-diagonal orbits only.
    rows1 = np.stack([np.stack([u, zero, t], 1), np.stack([-u, zero, t], 1), np.stack([zero, v, zero], 1)], 1)
    rows2 = np.stack([np.stack([v, zero, t], 1), np.stack([-v, zero, t], 1), np.stack([zero, u, zero], 1)], 1)
    qrows = np.concatenate([rows1, rows2[:n_off]])  # (M, 3, 3), M = C + C_off
    return {
        "qrows": np.ascontiguousarray(qrows.reshape(-1, 3), dtype=np.float32),
        "n_rows": len(qrows),
        "qnorm": np.linalg.norm(q, axis=1),
        "n_off": n_off,
        "idx": np.concatenate([flat(s1 * a, s2 * b), flat(s1 * b[:n_off], s2 * a[:n_off])], axis=1),  # (4, M)
        "s2": s2.astype(np.float64),
    }


def rotation_matrix(axis: str, degrees: float) -> np.ndarray:
    """Right-handed rotation matrix about a Cartesian axis (active rotation of the structure):
    ``scipy.spatial.transform.Rotation.from_euler(axis, degrees, degrees=True)``."""
    from scipy.spatial.transform import Rotation

    if axis not in ("x", "y", "z"):
        raise ValueError(f"axis must be 'x', 'y' or 'z', not {axis!r}")
    return Rotation.from_euler(axis, degrees, degrees=True).as_matrix()


# ---- form factors ----------------------------------------------------------------------------
def form_factor(element: str | int, qnorm: np.ndarray) -> np.ndarray:
    """X-ray atomic form factor f0 at |q| (1/Angstrom): xraydb takes sin(theta)/lambda = |q| / 4 pi."""
    import xraydb

    symbol = chemical_symbols[element] if isinstance(element, (int, np.integer)) else element
    return np.asarray(xraydb.f0(symbol, np.asarray(qnorm) / (4.0 * math.pi)), dtype=np.float64)


@lru_cache(maxsize=None)
def _form_factor_on_orbits(z: int) -> np.ndarray:
    """f0 of element z at the |q| of each D4 orbit (for structures of several species)."""
    return form_factor(z, _orbits()["qnorm"])


def warm_caches() -> None:
    """Fill the per-process caches: orbit tables, solid angles and every element's form factors (Z = 1 ... 98)."""
    _orbits()
    solid_angle_image()
    for z in range(1, MAX_Z_FORM_FACTOR + 1):
        _f2_image(z)
        _form_factor_on_orbits(z)


# ---- input checks and scaling ----------------------------------------------------------------
def _as_atoms(atoms) -> Atoms:
    if not isinstance(atoms, Atoms):
        raise TypeError(f"expected an ase.Atoms object, got {type(atoms).__name__}; "
                        "read files with ase.io.read first")
    return atoms


def check_structure(atoms: Atoms) -> None:
    """Raise ValueError, naming the fix, for structures the fingerprint cannot be computed on.

    A periodic crystal (``pbc`` all True) needs a cell with a volume; a structure that is not periodic in all
    three directions is a finite cluster, fingerprinted as the atoms given and scaled by their own neighbour
    distances (:func:`helpers.neighbours.nn_scale`)."""
    atoms = _as_atoms(atoms)
    n = len(atoms)
    if n == 0:
        raise ValueError("empty structure: the Atoms object has no atoms; give a crystal structure")
    if n == 1:
        raise ValueError("a single atom has no neighbour to scale by and no interference to show: "
                         "give a supercell, e.g. atoms.repeat((4, 4, 4))")
    cell = np.asarray(atoms.cell[:], dtype=np.float64)
    if np.all(atoms.pbc) and (not np.all(np.isfinite(cell)) or abs(np.linalg.det(cell)) < 1e-8):
        raise ValueError("the structure says it is periodic (pbc=True) but its cell is missing or degenerate "
                         "(zero volume): set atoms.cell to the three lattice vectors, or set atoms.pbc = False "
                         "for a finite cluster")
    if not np.all(np.isfinite(atoms.positions)):
        raise ValueError("positions contain NaN or infinite values; fix the coordinates")
    check_occupancy(atoms)
    numbers = np.asarray(atoms.numbers)
    bad = np.unique(numbers[(numbers < 1) | (numbers > MAX_Z_FORM_FACTOR)]).tolist()
    if bad:
        names = ", ".join(chemical_symbols[z] if 0 <= z < len(chemical_symbols) else str(z) for z in bad)
        raise ValueError(f"unknown element(s) {names}: X-ray form factors exist for Z = 1 ... "
                         f"{MAX_Z_FORM_FACTOR}; replace the placeholder atoms by real elements")


def check_occupancy(atoms: Atoms) -> None:
    """Raise ValueError naming the site when a structure has sites that are partly occupied or shared by several
    elements, as ``ase.io.read`` keeps them from a CIF (``atoms.info["occupancy"]``: per site, element ->
    occupancy; the atoms then carry one element per site, so reading such a file silently gives another crystal)
    or as an ``occupancy`` per-atom array."""
    occupancy = atoms.info.get("occupancy")
    if isinstance(occupancy, dict):
        kinds = atoms.arrays.get("spacegroup_kinds")
        for kind, species in occupancy.items():
            if len(species) == 1 and abs(sum(species.values()) - 1.0) < 1e-6:
                continue
            where = ""
            first = np.flatnonzero(kinds == int(kind)) if kinds is not None and str(kind).isdigit() else []
            if len(first) and np.all(atoms.pbc):
                x, y, z = atoms.get_scaled_positions(wrap=False)[first[0]]
                where = f" at fractional position ({x:.4g}, {y:.4g}, {z:.4g})"
            held = " + ".join(f"{element} {value:g}" for element, value in species.items())
            raise ValueError(f"partial occupancy: site {kind}{where} holds {held} (as read by ase.io.read into "
                             "atoms.info['occupancy']), but a fingerprint needs one element on every site, fully "
                             "occupied: give an ordered model of the crystal (a supercell with every site filled by "
                             "one element, e.g. a special quasirandom structure)")
    values = atoms.arrays.get("occupancy")
    partial = np.array([]) if values is None else np.flatnonzero(np.abs(np.asarray(values, np.float64) - 1.0) > 1e-6)
    if len(partial):
        i = int(partial[0])
        raise ValueError(f"partial occupancy: atom {i} ({atoms[i].symbol}) has occupancy {float(values[i]):g} "
                         "(atoms.arrays['occupancy']), but a fingerprint needs every site fully occupied: give an "
                         "ordered model of the crystal")


def _prepared(atoms: Atoms):
    """Checked, scaled (nearest-neighbour distance 1 Angstrom, estimated by :func:`nn_scale`) and centred
    positions, plus species."""
    check_structure(atoms)
    pos = np.asarray(atoms.positions, dtype=np.float64)
    scale = TARGET_NN_DISTANCE / nn_scale(atoms)
    pos = (pos - pos.mean(axis=0)) * scale
    return pos, np.asarray(atoms.numbers)


# ---- the fast path ---------------------------------------------------------------------------
_ROTATIONS = {  # the five patterns computed; Rz(-45) comes from Rz(+45) by a 90 degree grid rotation
    "x-": rotation_matrix("x", -ROTATION_DEG),
    "x+": rotation_matrix("x", +ROTATION_DEG),
    "y-": rotation_matrix("y", -ROTATION_DEG),
    "y+": rotation_matrix("y", +ROTATION_DEG),
    "z+": rotation_matrix("z", +ROTATION_DEG),
}


def _orbit_intensity(xyz: np.ndarray, weights: np.ndarray | None, image: np.ndarray) -> None:
    """Write |Psi|^2 (divided by f^2 when weights is None) on the ring pixels into flat ``image``.

    xyz: (N, 3) centred positions in one orientation. weights: None for one species, else (M, N) float32 form
    factors per orbit row and atom. The sums over atoms are :func:`helpers.kernels.orbit_sums`.
    """
    g = _orbits()
    n = len(xyz)
    padded = -(-n // LANES) * LANES
    xyz_t = np.zeros((3, padded), np.float32)
    xyz_t[:, :n] = xyz.T
    w = np.zeros((1 if weights is None else len(weights), padded), np.float32)
    w[:, :n] = 1.0 if weights is None else weights
    sums = np.empty((g["n_rows"], 4, 2), np.float32)
    orbit_sums(g["qrows"], xyz_t, w, sums)
    d = sums.astype(np.float64)
    # exp(-i(s1 ux + tz)) exp(-i s2 vy) = (c - i s)(C - i s2 S): real c C - s2 s S, imaginary -(s C + s2 c S)
    s2 = g["s2"]
    re = np.concatenate([d[None, :, 0, 0] - s2[:2] * d[None, :, 1, 1], d[None, :, 2, 0] - s2[2:] * d[None, :, 3, 1]])
    im = np.concatenate([d[None, :, 1, 0] + s2[:2] * d[None, :, 0, 1], d[None, :, 3, 0] + s2[2:] * d[None, :, 2, 1]])
    image[g["idx"]] = re * re + im * im


@lru_cache(maxsize=None)
def _f2_image(z: int) -> np.ndarray:
    """f(|q|)^2 on the whole detector for element z (flat, 4096)."""
    o = pixel_offsets()
    q, _ = detector_q(o[None, :], o[:, None])
    return (form_factor(z, np.linalg.norm(q, axis=-1)) ** 2).ravel()


def _pattern_images(pos: np.ndarray, numbers: np.ndarray) -> dict:
    """Intensities |Psi|^2 with form factors, before the solid angle, for the five orientations."""
    species = np.unique(numbers)
    if len(species) == 1:
        weights, f2 = None, _f2_image(int(species[0]))
    else:
        table = np.stack([_form_factor_on_orbits(int(s)) for s in species], axis=1)  # (C, S)
        table = np.concatenate([table, table[:_orbits()["n_off"]]])  # one row per orbit row (M, S)
        weights, f2 = table[:, np.searchsorted(species, numbers)].astype(np.float32), None
    out = {}
    for name, rot in _ROTATIONS.items():
        image = np.zeros(N_PIXELS * N_PIXELS, dtype=np.float64)
        _orbit_intensity((pos @ rot.T).astype(np.float32), weights, image)
        out[name] = image if f2 is None else image * f2
    return out


@lru_cache(maxsize=1)
def solid_angle_image() -> np.ndarray:
    """Solid angle of every detector pixel seen from the sample (64 x 64), zero outside the kept ring."""
    o = pixel_offsets()
    _, omega = detector_q(o[None, :], o[:, None])
    return omega * ring_mask()


def _assemble(patterns: dict) -> np.ndarray:
    return normalise(channel_intensities(patterns))


def channel_intensities(patterns: dict) -> np.ndarray:
    """The R, G, B channels (64, 64, 3) before normalisation: Omega |Psi|^2 summed over the structure
    turned by -45 and +45 degrees about x, y and z."""
    omega = solid_angle_image()
    img = {k: v.reshape(N_PIXELS, N_PIXELS) * omega for k, v in patterns.items()}
    # I(p; Rz(-45)) = I(R90 p; Rz(+45)), R90 the grid rotation that takes pixel (x, y) to (-y, x);
    # with rows = y and columns = x that is np.rot90(..., k=1) (checked against the direct sum).
    z_plus = img["z+"]
    z_minus = np.rot90(z_plus, k=1)
    red = img["x-"] + img["x+"]
    green = img["y-"] + img["y+"]
    blue = z_plus + z_minus
    return np.stack([red, green, blue], axis=-1)


def normalise(channels: np.ndarray) -> np.ndarray:
    """Zero outside the ring, then global min-max over the three channels to [0, 1], float32."""
    channels = np.where(ring_mask()[:, :, None], channels, 0.0)
    lo, hi = float(channels.min()), float(channels.max())
    if hi <= lo:
        raise ValueError("the diffraction pattern is flat (no intensity in the 10-30 px ring); "
                         "check the structure")
    return ((channels - lo) / (hi - lo)).astype(np.float32)


def diffraction_fingerprint(atoms: Atoms) -> np.ndarray:
    """Two-dimensional diffraction fingerprint of a structure.

    Parameters
    ----------
    atoms : ase.Atoms
        A crystal's block (periodic, with a cell) or a finite cluster (not periodic); the sum runs over these atoms
        as given (no random rotation, no supercell).

    Returns
    -------
    numpy.ndarray
        float32 (64, 64, 3) in [0, 1]: red, green and blue are the patterns at ±45° about x, y and z; the structure
        is scaled so that its nearest-neighbour distance (:func:`helpers.neighbours.nn_scale`) is 1 Angstrom.

    Raises
    ------
    ValueError
        On an empty or single-atom structure, a periodic one without a cell, NaN/inf positions or an unknown
        element; the message names the fix.
    """
    pos, numbers = _prepared(atoms)
    return _assemble(_pattern_images(pos, numbers))


def diffraction_fingerprint_views(atoms: Atoms, rotations: Sequence[np.ndarray]) -> np.ndarray:
    """Fingerprints (n_views, 64, 64, 3) of one structure turned rigidly by each 3 x 3 rotation: the same as
    ``diffraction_fingerprint(rotate(atoms, R))`` for every R, with the checks, the scale (a rotation does not
    change it) and the centring done once for all views."""
    pos, numbers = _prepared(atoms)
    return np.stack([_assemble(_pattern_images(pos @ np.asarray(r, np.float64).T, numbers)) for r in rotations])


def views_chunk(start: int, structures: Sequence[Atoms], rotations: tuple) -> np.ndarray:
    """Worker: (n, n_views, 64, 64, 3) fingerprints of consecutive structures in every view."""
    from threadpoolctl import threadpool_limits

    out = np.empty((len(structures), len(rotations)) + SHAPE, dtype=np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        for k, atoms in enumerate(structures):
            try:
                out[k] = diffraction_fingerprint_views(atoms, rotations)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"structure {start + k}: {exc}") from exc
    return out


def _fingerprint_chunk(start: int, structures: Sequence[Atoms]) -> np.ndarray:
    """Fingerprints of consecutive structures; errors name the structure's index in the batch."""
    from threadpoolctl import threadpool_limits

    out = np.empty((len(structures),) + SHAPE, dtype=np.float32)
    # One BLAS thread: the matrices are small and the workers already use every core.
    with threadpool_limits(limits=1, user_api="blas"):
        for k, atoms in enumerate(structures):
            try:
                out[k] = diffraction_fingerprint(atoms)
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"structure {start + k}: {exc}") from exc
    return out


def diffraction_fingerprints(structures: Sequence[Atoms] | Iterable[Atoms], n_jobs: int | None = None,
                             progress: bool = True, desc: str = "fingerprints",
                             chunk_size: int = 16) -> np.ndarray:
    """Fingerprints of many structures, in the order given.

    Parameters
    ----------
    structures : sequence of ase.Atoms
    n_jobs : int, optional
        Worker processes (default: every core available; processes, because the work is many short numpy calls
        that threads would serialise on the GIL). Small batches and ``n_jobs=1`` run in this process.
    progress : bool
        Show a tqdm progress bar labelled ``desc``.
    chunk_size : int
        Structures per task handed to a worker.

    Returns
    -------
    numpy.ndarray
        float32 (n, 64, 64, 3); it does not depend on ``n_jobs``.
    """
    from .parallel import map_chunks

    structures = list(structures)
    out = np.empty((len(structures),) + SHAPE, dtype=np.float32)
    for start, chunk, result in map_chunks(_fingerprint_chunk, structures, n_jobs=n_jobs,
                                           chunk_size=chunk_size, progress=progress, desc=desc,
                                           unit="structure"):
        out[start: start + len(chunk)] = result
    return out
