"""One place for paths: the repository root, data/, figures/ and the executed-notebook folder.

``CRYSTAL_DATA_DIR``, ``CRYSTAL_FIGURES_DIR``, ``CRYSTAL_TABLES_DIR`` (default figures/tables) and
``CRYSTAL_EXECUTED_DIR`` move them (the tests run
the whole series in a temporary folder this way); nothing else in the project types a path.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = ROOT / "notebooks"


def _dir(variable: str, default: Path) -> Path:
    path = Path(os.environ.get(variable, default)).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """Where notebooks read and write data sets (default: <repo>/data)."""
    return _dir("CRYSTAL_DATA_DIR", ROOT / "data")


def figures_dir() -> Path:
    """Where figures go (default: <repo>/figures)."""
    return _dir("CRYSTAL_FIGURES_DIR", ROOT / "figures")


def tables_dir() -> Path:
    """Where tables go (default: <repo>/figures/tables), as CSV and Markdown."""
    return _dir("CRYSTAL_TABLES_DIR", figures_dir() / "tables")


def shown(path) -> str:
    """A path as a notebook prints it, without the machine's folders: "data/cnn_model.keras" for a file in the data
    folder (wherever ``CRYSTAL_DATA_DIR`` puts it), "figures/…" and "executed/…" likewise, else relative to the
    repository, else the file name alone."""
    path = Path(path).resolve()
    for name, folder in (("data", data_dir()), ("figures", figures_dir()), ("executed", executed_dir()),
                         (".", ROOT)):
        try:
            return (Path(name) / path.relative_to(folder)).as_posix()
        except ValueError:
            continue
    return path.name


def write_text(path: Path, text: str) -> Path:
    """Write a text file atomically (:func:`helpers.provenance.write_text`)."""
    from .provenance import write_text as atomic

    return atomic(path, text)


def percent(v) -> str:
    """A fraction as a percentage with two decimals ("99.86 %"); "—" for None or NaN (not measured)."""
    try:
        missing = v is None or bool(v != v)
    except TypeError:  # pandas' NA, which has no truth value
        missing = True
    return "—" if missing else f"{100 * float(v):.2f} %"


def markdown_table(table, float_format: str = ".4f") -> str:
    """A pandas DataFrame as a Markdown table (``DataFrame.to_markdown``), floats with ``float_format``."""
    return table.to_markdown(index=False, floatfmt=float_format) + "\n"


def save_table(name: str, table, markdown: str | None = None) -> Path:
    """Write a pandas DataFrame as figures/tables/<name>.csv and <name>.md (``markdown`` replaces the
    default Markdown rendering), each to a temporary file first, then renamed."""
    path = tables_dir() / f"{name}.csv"
    write_text(path, table.to_csv(index=False))
    write_text(path.with_suffix(".md"), markdown if markdown is not None else markdown_table(table))
    return path


def executed_dir() -> Path:
    """Where the series runner puts executed copies of the notebooks (default: <repo>/executed)."""
    return _dir("CRYSTAL_EXECUTED_DIR", ROOT / "executed")


def save_fig(name: str, fig=None, dpi: int = 120) -> Path:
    """Save a matplotlib figure as figures/<name>.png, name starting with the notebook number (e.g.
    ``save_fig("01_one_structure_per_class")``); written to a temporary file, then renamed."""
    import matplotlib.pyplot as plt

    fig = plt.gcf() if fig is None else fig
    path = figures_dir() / f"{name}.png"
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    os.replace(tmp, path)
    return path
