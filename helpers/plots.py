"""Figures shared by the notebooks."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_structure(ax, atoms, title: str = "", rotation: str = "15x,25y,0z", radius: float = 0.35) -> None:
    """Draw a structure with ASE: atoms as discs of ``radius`` times the nearest-neighbour distance
    (0.5 would touch), cell outline."""
    from ase.visualize.plot import plot_atoms

    # a float ``radii`` would scale ASE's covalent radii; a list gives the radii in Angstrom
    from .neighbours import mean_nearest_neighbour_distance

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


#: Fingerprints are drawn as intensity ** DISPLAY_GAMMA: most of a fingerprint is near zero and the spots beyond the
#: first ones are dim, so a square root shows them; the data are not changed, and every grid says so under it.
DISPLAY_GAMMA = 0.5


def fingerprint_grid(fingerprints, titles, ncols: int = 7, size: float = 1.9, gamma: float | None = DISPLAY_GAMMA):
    """A row-major grid of fingerprints, drawn as intensity ** ``gamma`` (< 1 brightens weak peaks, for display
    only; None or 1: as they are), which a line under the grid states."""
    import matplotlib.pyplot as plt

    n = len(fingerprints)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_axis_off()
    stretch = gamma is not None and gamma != 1
    for ax, fp, title in zip(axes.ravel(), fingerprints, titles):
        show_fingerprint(ax, np.clip(fp, 0, 1) ** gamma if stretch else fp, title)
    fig.tight_layout()
    if stretch:
        fig.text(0.5, 0.0, f"drawn as intensity^{gamma:g} so that weak spots show (the data are unchanged)",
                 ha="center", va="top", fontsize=8, color="0.3")
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
    the arrays it is given, so it gets copies, and prints their shapes, which are kept out of the output. Returns
    the paths, one per layer, in order."""
    import contextlib
    import io
    import os
    import shutil
    import tempfile

    from . import config

    figures = config.figures_dir()
    scratch = Path(tempfile.mkdtemp(prefix=".keract-", dir=figures))
    try:
        copies = {name: np.array(a, copy=True) for name, a in activations.items()}
        kwargs = {k: (np.array(v, copy=True) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
        with contextlib.redirect_stdout(io.StringIO()):  # keract prints each layer's shape: noise in a notebook
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


# ---- figures that notebook 06 draws again from saved results ------------------------------------
CLASS_PALETTE = "tab10"


def structures_per_class(test_set, class_names: list):
    """Report Fig. 2A: per class, the conventional cell of the first held-out parent (top) and its
    prepared supercell (bottom)."""
    import matplotlib.pyplot as plt

    from . import structures

    first = [int(np.flatnonzero(test_set["label"] == i)[0]) for i in range(len(class_names))]
    fig, axes = plt.subplots(2, len(class_names), figsize=(2.3 * len(class_names), 4.8), squeeze=False)
    for k, i in enumerate(first):
        shape = tuple((kv.split("=")[0], float(kv.split("=")[1])) for kv in str(test_set["lattice_parameters"][i]).split(",") if kv)
        parent = structures.Parent(class_names[test_set["label"][i]], str(test_set["prototype"][i]),
                                   str(test_set["element"][i]), float(test_set["nn_distance"][i]), shape)
        cell = parent.conventional_cell()
        plot_structure(axes[0, k], cell.repeat((2, 2, 2)) if len(cell) < 4 else cell,
                       f"{class_names[test_set['label'][i]]}\n{test_set['element'][i]} {test_set['prototype'][i]} "
                       f"(SG {test_set['spacegroup'][i]})")
        plot_structure(axes[1, k], test_set.atoms(i), f"supercell, {test_set['n_atoms'][i]} atoms", radius=0.25)
    fig.tight_layout()
    return fig


def confusion_heatmap(matrix: np.ndarray, class_names: list, title: str):
    """A confusion matrix (rows: true class, columns: predicted) with counts."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    cm = pd.DataFrame(np.asarray(matrix), index=pd.Index(class_names, name="true"), columns=class_names)
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    sns.heatmap(cm, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def training_history(history: dict, best_epoch: int | None = None, title: str = "Training history",
                     max_epochs: int | None = None):
    """Loss and accuracy per epoch, training and validation (report Fig. 6). With ``max_epochs`` (the recipe's upper
    bound) larger than the epochs run, the axis runs to it and the epochs early stopping skipped are shaded."""
    import matplotlib.pyplot as plt

    ep = np.arange(1, len(history["loss"]) + 1)
    skipped = max_epochs is not None and max_epochs > len(ep)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in zip(axes, ["loss", "accuracy"], ["categorical cross-entropy", "accuracy"]):
        ax.plot(ep, history[key], "o-", label="training")
        ax.plot(ep, history[f"val_{key}"], "s--", label="validation")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", lw=0.8, ls=":", label="kept epoch")
        if skipped:
            ax.axvspan(len(ep) + 0.5, max_epochs + 0.5, color="grey", alpha=0.12,
                       label=f"not trained: stopped early (at most {max_epochs})")
            ax.set_xlim(0.5, max_epochs + 0.5)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_xticks(np.arange(1, (max_epochs if skipped else len(ep)) + 1))
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def loss_curves(history: dict, title: str, loss_label: str = "loss"):
    """Training and validation loss per epoch (report Fig. 5), log scale."""
    import matplotlib.pyplot as plt

    ep = np.arange(1, len(history["loss"]) + 1)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(ep, history["loss"], "o-", label="training (95 %)")
    ax.plot(ep, history["val_loss"], "s--", label="validation (5 %)")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_label)
    ax.set_xticks(ep)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def scree(ratio: np.ndarray, n95: int, n_components: int):
    """Report Fig. 4: explained variance per component and its running sum, with the 95 % point."""
    import matplotlib.pyplot as plt

    k = np.arange(1, len(ratio) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    shown = min(len(ratio), max(100, 2 * n_components))
    axes[0].plot(k[:shown], ratio[:shown], ".-")
    axes[0].axvline(n_components, color="grey", ls=":", label=f"{n_components} components")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("component")
    axes[0].set_ylabel("explained variance ratio")
    axes[0].set_title(f"first {shown} components")
    axes[0].legend()
    axes[1].plot(k, np.cumsum(ratio))
    axes[1].axhline(0.95, color="C3", ls="--", lw=0.8)
    axes[1].axvline(n95, color="C3", ls="--", lw=0.8, label=f"95 % at {n95} components")
    axes[1].axvline(n_components, color="grey", ls=":", label=f"{n_components}: {np.sum(ratio[:n_components]):.1%}")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("number of components")
    axes[1].set_ylabel("cumulative explained variance")
    axes[1].legend()
    fig.suptitle("Scree plot, linear PCA")
    fig.tight_layout()
    return fig


def profiles_per_class(profiles: np.ndarray, labels: np.ndarray, class_names: list, r0: int = 10):
    """Mean (line) and 10-90 % band of the azimuthal profile of each class."""
    import matplotlib.pyplot as plt

    r = r0 + np.arange(profiles.shape[1])
    fig, axes = plt.subplots(1, len(class_names), figsize=(2.2 * len(class_names), 2.6), sharey=True)
    for c, (ax, name) in enumerate(zip(np.atleast_1d(axes), class_names)):
        p = profiles[labels == c]
        if len(p):
            ax.fill_between(r, np.quantile(p, 0.1, axis=0), np.quantile(p, 0.9, axis=0), alpha=0.3, color=f"C{c}")
            ax.plot(r, p.mean(axis=0), color=f"C{c}")
        ax.set_title(f"{name} (n = {len(p)})", fontsize=9)
        ax.set_xlabel("radius (px)")
    np.atleast_1d(axes)[0].set_ylabel("share of intensity")
    fig.suptitle("Azimuthal profile per class: mean and 10-90 % band")
    fig.tight_layout()
    return fig


def embedding_panels(views: dict, labels: np.ndarray, named_clusters: dict, class_names: list,
                     max_points: int = 3000, seed: int = 0):
    """Report Fig. 8: per method, the first two embedding dimensions coloured by true class (top) and
    by the class its K-Means cluster was matched to (bottom); at most ``max_points`` points drawn."""
    import matplotlib.pyplot as plt

    n = len(labels)
    pick = np.random.default_rng(seed).permutation(n)[:max_points]
    fig, axes = plt.subplots(2, len(views), figsize=(3.3 * len(views), 6.4), squeeze=False)
    for col, (method, V) in enumerate(views.items()):
        for row, colour in enumerate((labels, named_clusters[method])):
            ax = axes[row, col]
            for c, name in enumerate(class_names):
                m = pick[colour[pick] == c]
                ax.scatter(V[m, 0], V[m, 1], s=3, color=f"C{c}", label=name, alpha=0.6, linewidths=0)
            ax.set_title(f"{method}\n{'true class' if row == 0 else 'K-Means cluster (matched)'}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, -1].legend(markerscale=4, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def robustness_curves(table, title: str | None = None):
    """The paper's Table 1 as a figure: accuracy against the vacancy level (left) and the displacement level
    (right), the CNN and spglib at each tolerance, pristine at 0 (a robustness table of notebook 03)."""
    import matplotlib.pyplot as plt

    spglib_cols = [c for c in table.columns if c.startswith("spglib_")]
    pristine = table[table.defect == "none"].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, defect, xlabel in zip(axes, ["vacancies", "displacements"],
                                  ["vacancies (% of atoms removed)", "displacement σ (% of the NN distance)"]):
        t = table[table.defect == defect]
        x = np.concatenate([[0.0], 100 * t.level.to_numpy()])
        ax.plot(x, 100 * np.concatenate([[pristine.cnn], t.cnn]), "o-", lw=2, label="CNN")
        for col, marker in zip(spglib_cols, ["s--", "^:"]):
            ax.plot(x, 100 * np.concatenate([[pristine[col]], t[col]]), marker,
                    label=f"spglib, symprec {col.split('_', 1)[1]} Å")
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel(xlabel)
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(loc="center left")
    sizes = (f"n = {int(pristine.n)} per level for the CNN, {int(pristine.n_spglib)} for spglib"
             if "n_spglib" in table.columns and int(pristine.n_spglib) != int(pristine.n) else
             f"n = {int(pristine.n)} per level")
    fig.suptitle(f"{title} ({sizes})" if title else f"CNN against spglib on the same held-out parents ({sizes})")
    fig.tight_layout()
    return fig


def uncertainty_by_level(per_structure):
    """Predictive entropy (boxes) and mean mutual information (red) of every answer against the vacancy level (left)
    and the displacement level (right); ``per_structure`` is :func:`helpers.robustness.score`'s first table with
    ``predictive_entropy`` and ``mutual_information`` columns."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, defect, xlabel in zip(axes, ["vacancies", "displacements"],
                                  ["vacancies (% of atoms)", "displacement σ (% of NN distance)"]):
        sub = per_structure[per_structure.defect.isin(["none", defect])].copy()
        sub["level (%)"] = (100 * sub.level).round(2).astype(str)
        sns.boxplot(data=sub, x="level (%)", y="predictive_entropy", ax=ax, color="tab:blue", fliersize=1.5)
        means = sub.groupby("level (%)", sort=False).mutual_information.mean()
        ax.plot(range(len(means)), means.to_numpy(), "r^-", label="mean mutual information")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("nats")
        ax.legend(loc="upper left")
    axes[0].set_title("Predictive entropy against the vacancy level")
    axes[1].set_title("... and against the displacements")
    fig.tight_layout()
    return fig


def misclassified_gallery(X, y_true, probability, class_names: list, captions=None, n: int = 14):
    """The wrong answers among fingerprints ``X``: each with its true class, the class named and that class's
    probability, and the runner-up class and its probability, most confident mistakes first. When every answer is right, the ``n`` right answers with the lowest
    probability of their class instead (the closest calls), and the title says so. Returns ``(figure, indices)``."""
    y_true, probability = np.asarray(y_true), np.asarray(probability)
    predicted = probability.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    if len(wrong):
        order = wrong[np.argsort(-probability[wrong, predicted[wrong]], kind="stable")][:n]
        heading = f"{len(wrong)} of {len(y_true)} named wrong" + (f" (the {len(order)} most confident)"
                                                                  if len(wrong) > len(order) else "")
    else:
        order = np.argsort(probability[np.arange(len(y_true)), y_true], kind="stable")[:n]
        heading = f"all {len(y_true)} named right: the {len(order)} closest calls"
    runner_up = np.argsort(-probability, axis=1, kind="stable")[:, 1]  # the class the network would name next
    titles = [f"{class_names[y_true[i]]} → {class_names[predicted[i]]} ({probability[i, predicted[i]]:.2f})\n"
              f"next: {class_names[runner_up[i]]} ({probability[i, runner_up[i]]:.2f})"
              + (f"\n{captions[i]}" if captions is not None else "") for i in order]
    fig = fingerprint_grid([X[i] for i in order], titles, ncols=min(7, max(len(order), 1)), size=2.1)
    fig.suptitle(heading, y=1.02)
    return fig, order
