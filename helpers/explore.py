"""Interactive explorers for the notebooks (ipywidgets): change a crystal, see its fingerprint and the answers.

Each explorer is also a plain function (``render_*``) that draws the same picture for given choices, so a test
or a script can use it without a browser; the widget only wires controls to it.
"""
from __future__ import annotations

import numpy as np

from . import defects, fingerprint, plots, robustness, structures


# ---- notebook 02: one crystal, turned and damaged ------------------------------------------------
def render_crystal(class_name: str, element: str, axis: str, angle: float, vacancy_fraction: float, sigma: float,
                   seed: int = 0) -> tuple:
    """The example crystal of ``class_name`` made of ``element``, turned by ``angle`` degrees about ``axis``, with a
    share ``vacancy_fraction`` of its atoms removed and displacements of ``sigma`` times the nearest-neighbour
    distance. Returns ``(fingerprint, png bytes of structure and fingerprint side by side)``."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    atoms = structures.example_structure(class_name, element, rng=rng,
                                         rotation=fingerprint.rotation_matrix(axis, angle))
    if vacancy_fraction > 0:
        atoms = defects.vacancies(atoms, vacancy_fraction, rng)
    if sigma > 0:
        atoms = defects.displacements(atoms, sigma, rng)
    fp = fingerprint.diffraction_fingerprint(atoms)
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
    plots.plot_structure(axes[0], atoms, f"{element} {class_name}, {len(atoms)} atoms", radius=0.3)
    plots.show_fingerprint(axes[1], fp, f"{axis}-rotation {angle:.0f}°, vac {vacancy_fraction:.0%}, σ {sigma:.1%}")
    return fp, plots.to_png(fig)


def crystal_explorer(seed: int = 0):
    """Notebook 02's explorer: class, element, a rotation about one axis, vacancies and displacements; the
    structure and its fingerprint redrawn on every change. Returns the widget (display it)."""
    import ipywidgets as widgets

    controls = {
        "class_name": widgets.Dropdown(options=list(structures.CLASSES), value="fcc", description="class"),
        "element": widgets.Dropdown(options=list(structures.ELEMENTS), value="Cu", description="element"),
        "axis": widgets.ToggleButtons(options=["x", "y", "z"], value="z", description="axis"),
        "angle": widgets.FloatSlider(value=0, min=-180, max=180, step=5, description="angle (°)",
                                     continuous_update=False),
        "vacancy_fraction": widgets.FloatSlider(value=0, min=0, max=0.6, step=0.05, description="vacancies",
                                                continuous_update=False),
        "sigma": widgets.FloatSlider(value=0, min=0, max=0.1, step=0.005, description="σ / NN",
                                     readout_format=".3f", continuous_update=False),
    }
    return _wire(controls, lambda **v: render_crystal(**v, seed=seed)[1])


# ---- notebook 03: a held-out parent at a defect level, the CNN against spglib -------------------
def render_defect(model, pristine, index: int, defect: str, level: float, seed: int = 0,
                  symprecs=robustness.SYMPRECS) -> tuple:
    """Held-out parent ``index`` of the structure set ``pristine`` with ``defect`` ("none", "vacancies" or
    "displacements") at ``level``: its fingerprint, the CNN's probability for every class and spglib's space group at
    each ``symprecs``. Returns ``(answer dict, png bytes)``."""
    import matplotlib.pyplot as plt

    from .models import predict_proba

    class_names = pristine.class_names
    true = class_names[int(pristine["label"][index])]
    rng = np.random.default_rng([seed, 41, index])
    atoms = pristine.atoms(index)
    if defect == "vacancies" and level > 0:
        atoms = defects.vacancies(atoms, level, rng)
    elif defect == "displacements" and level > 0:
        atoms = defects.displacements(atoms, level, rng, nn_distance=float(pristine["nn_distance"][index]))
    fp = fingerprint.diffraction_fingerprint(atoms)
    p = predict_proba(model, fp[None])[0]
    found = {s: structures.space_group(atoms, symprec=s) for s in symprecs}
    parent_group = int(pristine["spacegroup"][index])
    answer = {"true": true, "predicted": class_names[int(p.argmax())], "probability": p, "space_groups": found,
              "spglib_right": {s: robustness.spglib_right(g, parent_group, true) for s, g in found.items()},
              "n_atoms": len(atoms)}
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.3), gridspec_kw={"width_ratios": [1, 1.4]})
    plots.show_fingerprint(axes[0], fp, f"{pristine['element'][index]} {true}, {len(atoms)} atoms")
    colours = ["tab:green" if c == true else "tab:grey" for c in class_names]
    axes[1].barh(class_names, p, color=colours)
    axes[1].set_xlim(0, 1)
    axes[1].invert_yaxis()
    spglib_text = "; ".join(f"symprec {s:g} Å: {g}{' ✓' if answer['spglib_right'][s] else ' ✗'}"
                            for s, g in found.items())
    axes[1].set_title(f"CNN: {answer['predicted']} ({p.max():.2f})\nspglib (parent {parent_group}): {spglib_text}",
                      fontsize=9)
    axes[1].set_xlabel("CNN probability (green: true class)")
    fig.tight_layout()
    return answer, plots.to_png(fig)


def defect_explorer(model, pristine, seed: int = 0):
    """Notebook 03's explorer: pick a class, one of its held-out parents, a defect and its level; see the
    fingerprint, the CNN's probabilities and spglib's answer. Returns the widget (display it)."""
    import ipywidgets as widgets

    class_names = pristine.class_names
    labels = np.asarray(pristine["label"])
    members = {c: np.flatnonzero(labels == k) for k, c in enumerate(class_names)}
    controls = {
        "class_name": widgets.Dropdown(options=[c for c in class_names if len(members[c])], description="class"),
        "parent": widgets.IntSlider(value=0, min=0, max=max(len(m) for m in members.values()) - 1,
                                    description="parent", continuous_update=False),
        "defect": widgets.ToggleButtons(options=["none", "vacancies", "displacements"], value="vacancies",
                                        description="defect"),
        "level": widgets.FloatSlider(value=0.25, min=0, max=0.6, step=0.01, description="level",
                                     continuous_update=False),
    }

    def draw(class_name, parent, defect, level):
        chosen = members[class_name]
        index = int(chosen[min(parent, len(chosen) - 1)])
        return render_defect(model, pristine, index, defect, level, seed=seed)[1]

    return _wire(controls, draw)


def _wire(controls: dict, draw):
    """Controls on the left, the picture on the right, redrawn on every change; an error (e.g. more vacancies than
    atoms) is shown in words instead of a stack trace."""
    import ipywidgets as widgets

    picture = widgets.Image(format="png")
    status = widgets.HTML()

    def redraw(change=None):
        try:
            picture.value, status.value = draw(**{name: w.value for name, w in controls.items()}), ""
        except ValueError as exc:
            status.value = f"<b>{exc}</b>"

    for w in controls.values():
        w.observe(redraw, names="value")
    redraw()
    return widgets.HBox([widgets.VBox(list(controls.values()) + [status]), picture])
