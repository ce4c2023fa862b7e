"""The exercises name parameters their notebooks have, with values of the right kind."""
import ast
import json

import nbformat
import yaml

from helpers import exercises, series


def _parameters(path) -> dict:
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    tree = ast.parse(cell.source)
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)}


def test_every_exercise_reruns_its_notebook_with_parameters_it_has():
    found = {p.stem: p for p in series.notebooks()}
    assert set(exercises.EXERCISES) == set(found)
    for stem, items in exercises.EXERCISES.items():
        defaults = _parameters(found[stem])
        numbers = [n for n, _, _ in items]
        assert numbers == list(range(1, len(items) + 1)), (stem, numbers)
        for number, title, parameters in items:
            stems = [s for s in found if s[:2] in exercises.SERIES.get((stem, number), (stem[:2],))]
            for name, value in (parameters or {}).items():
                for s in stems:
                    own = _parameters(found[s])
                    assert name in own, f"{stem} exercise {number}: {s} has no parameter {name!r}"
                    default = own[name]
                    if default is not None:
                        assert isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int)), \
                            (stem, number, name, value, default)
        # the notebook's own text names every rerun's values
        text = "\n".join(c.source for c in nbformat.read(str(found[stem]), as_version=4).cells if c.cell_type == "markdown")
        for number, title, parameters in items:
            for name, value in (parameters or {}).items():
                assert f"-p {name} {value}" in text.replace("\n   ", " ") or (isinstance(value, list) and name in text), \
                    f"{stem} exercise {number} does not name -p {name} {value}"
        assert defaults  # every notebook has a parameters cell


def test_options_pass_lists_as_yaml_that_papermill_reads_back():
    opts = exercises.options({"epochs": 1, "displacement_levels": [0.0001, 0.006], "pool": "linear"})
    assert opts.startswith("-p epochs 1 -p pool linear -y ")
    payload = opts.split("-y ", 1)[1].strip('"')
    assert yaml.safe_load(payload) == {"displacement_levels": [0.0001, 0.006]}
    assert json.loads(json.dumps(yaml.safe_load(payload)))
