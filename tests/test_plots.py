"""Figures that state numbers in their titles state the right ones."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from helpers import plots  # noqa: E402

CLASSES = ["bct_139", "bct_141", "hex_rh", "sc", "fcc", "diam", "bcc"]


def test_gallery_names_the_runner_up_and_its_probability():
    X = np.zeros((3, 64, 64, 3), np.float32)
    p = np.full((3, 7), 0.01)
    p[0, [0, 1]] = 0.61, 0.33  # right, close call: bct_139, next bct_141
    p[1, [4, 6]] = 0.9, 0.04
    p[2, [5, 2]] = 0.5, 0.44
    fig, order = plots.misclassified_gallery(X, np.array([0, 4, 5]), p, CLASSES)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert "bct_139 → bct_139 (0.61)\nnext: bct_141 (0.33)" in titles
    assert "diam → diam (0.50)\nnext: hex_rh (0.44)" in titles
    fig, order = plots.misclassified_gallery(X, np.array([1, 4, 5]), p, CLASSES)  # one mistake
    assert list(order) == [0] and "bct_141 → bct_139 (0.61)\nnext: bct_141 (0.33)" in fig.axes[0].get_title()


def test_table1_figure_gives_the_size_of_each_method():
    table = pd.DataFrame({"defect": ["none", "vacancies", "displacements"], "level": [0.0, 0.25, 0.02],
                          "n": [700] * 3, "n_spglib": [140] * 3, "cnn": [1.0, 0.99, 1.0],
                          "spglib_0.001": [1.0, 0.0, 0.0], "spglib_0.1": [1.0, 0.0, 1.0]})
    assert "n = 700 per level for the CNN, 140 for spglib" in plots.robustness_curves(table)._suptitle.get_text()
    table["n_spglib"] = 700
    assert "(n = 700 per level)" in plots.robustness_curves(table, "Table 1")._suptitle.get_text()
