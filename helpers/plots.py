"""Figures shared by the notebooks."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_structure(ax, atoms, title: str = "", rotation: str = "15x,25y,0z", radius: float = 0.35) -> None:
    """Draw a structure with ASE: atoms as discs of ``radius`` times the nearest-neighbour distance
    (0.5 would touch), cell outline."""
    from ase.visualize.plot import plot_atoms

    # a float ``radii`` would scale ASE's covalent radii; a list gives the radii in Angstrom
    from .fingerprint import mean_nearest_neighbour_distance

    nn = mean_nearest_neighbour_distance(atoms) if len(atoms) > 1 else 1.0
    plot_atoms(atoms, ax, rotation=rotation, radii=[radius * nn] * len(atoms), show_unit_cell=2)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def show_fingerprint(ax, fingerprint: np.ndarray, title: str = "") -> None:
    """An RGB fingerprint (64, 64, 3) in [0, 1], origin at the top left as an image."""
    ax.imshow(np.clip(fingerprint, 0, 1), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def fingerprint_grid(fingerprints, titles, ncols: int = 7, size: float = 1.9, gamma: float | None = None):
    """A row-major grid of fingerprints; ``gamma`` < 1 brightens weak peaks for display only."""
    import matplotlib.pyplot as plt

    n = len(fingerprints)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    for ax, fp, title in zip(axes.ravel(), fingerprints, titles):
        show_fingerprint(ax, fp if gamma is None else fp**gamma, title)
    fig.tight_layout()
    return fig


def class_counts(ax, counts: dict, title: str = "") -> None:
    """Bar chart of {set name: counts per class}."""
    names = list(counts)
    classes = list(next(iter(counts.values())).keys())
    width = 0.8 / len(names)
    x = np.arange(len(classes))
    for k, name in enumerate(names):
        ax.bar(x + k * width, [counts[name][c] for c in classes], width, label=name)
    ax.set_xticks(x + 0.4 - width / 2, classes)
    ax.set_ylabel("structures")
    ax.set_title(title)
    ax.legend(fontsize=8)


def to_png(fig, dpi: int = 100) -> bytes:
    """A figure as PNG bytes (closed afterwards), e.g. for an ipywidgets Image."""
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def keract_figures(draw, activations: dict, prefix: str, **kwargs) -> list:
    """Run a keract display function (``keract.display_activations`` or ``display_heatmaps``) with
    ``save=True`` and move its PNGs to figures/<prefix>_<layer>.png (atomic renames). keract modifies
    the arrays it is given, so it gets copies. Returns the paths, one per layer, in order."""
    import os
    import shutil
    import tempfile

    from . import config

    figures = config.figures_dir()
    scratch = Path(tempfile.mkdtemp(prefix=".keract-", dir=figures))
    try:
        copies = {name: np.array(a, copy=True) for name, a in activations.items()}
        kwargs = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        draw(copies, save=True, directory=str(scratch), **kwargs)
        paths = []
        for index, name in enumerate(activations):
            made = scratch / f"{index}_{name.split('/')[0]}.png"
            if not made.exists():
                raise RuntimeError(f"keract wrote no figure for layer {name}: pass the activations of one sample "
                                   "(x[None]) and of convolution layers only (keract skips the others)")
            paths.append(figures / f"{prefix}_{name.replace('/', '_')}.png")
            os.replace(made, paths[-1])
        return paths
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
