"""The exercises that close each notebook, with the parameter values each one reruns its notebook with.

Each notebook's last cell names these values; ``benchmarks/bench_exercises.py`` (``make bench-exercises``) reruns
every exercise that has a rerun, on a copy of a default-size run's data, and times it (natively or with the CPU held
to AVX2 + FMA), so the results page can say how long each takes. An exercise done in an explorer or by reading a
table has no rerun (``rerun`` None); one that edits code reruns the notebook with its defaults after the edit.
"""
from __future__ import annotations

#: notebook stem -> [(exercise number, short title, papermill parameters of its rerun or None)]. An exercise whose stem
#: is in SERIES reruns those notebooks in order, each with the same parameters.
EXERCISES = {
    "01_data_generation": [
        (1, "Size of the data", {"n_per_class": 200}),
        (2, "Harder tests", {"vacancy_fraction": 0.5, "displacement_sigma": 0.06}),
        (3, "What spglib drops (after editing PROTOTYPES)", {"n_per_class": 50, "n_test_per_class": 10}),
    ],
    "02_diffraction_fingerprints": [
        (1, "Turn a crystal (explorer)", None),
        (2, "Vacancies against displacements (explorer)", None),
        (3, "The scale (explorer, edited)", None),
    ],
    "03_cnn_training": [
        (1, "How few epochs?", {"epochs": 1, "n_robust_per_class": 20}),
        (2, "Where does spglib give up?", {"epochs": 1, "n_robust_per_class": 20, "vacancy_levels": [0.25],
                                           "displacement_levels": [0.0001, 0.0003, 0.001, 0.006]}),
        (3, "Push the defects (explorer)", None),
    ],
    "04_attentive_response_maps": [
        (1, "Another sample", {"seed": 1}),
        (2, "More filters", {"top_k": 8}),
        (3, "A defective input (after editing the cell)", {}),
    ],
    "05_dimensionality_reduction_clustering": [
        (1, "How many components?", {"n_components": 10, "ae_epochs": 2}),
        (2, "A wider bottleneck (after editing the cell)", {"ae_epochs": 2}),
        (3, "Powder patterns (reading the contingency table)", None),
        (4, "The seed and the code", {"seed": 1}),
    ],
    "06_report_figures": [
        (1, "Tables 3 and 4 (reading)", None),
        (2, "Another Fig. 7", {"seed": 1, "fig7_filters": 8}),
        (3, "Your own run: notebooks 01-06 at a fifth of the size", {"n_per_class": 300, "n_test_per_class": 40}),
    ],
    "07_any_orientation": [
        (1, "Fewer views", {"n_views": 4}),
        (2, "Linear pool", {"pool": "linear"}),
        (3, "A smaller cluster (after editing the cell)", {}),
        (4, "Interrupt the batch (in the notebook)", None),
    ],
    "08_local_structure": [
        (1, "Sparser windows", {"stride": 2.5}),
        (2, "Smaller windows (trains its own window network)", {"window_atoms": 128}),
        (3, "A map in OVITO (reading)", None),
    ],
}


SERIES = {("06_report_figures", 3): ("01", "02", "03", "04", "05", "06")}


def options(parameters: dict) -> str:
    """papermill's options for ``parameters``: ``-p name value``, and one ``-y`` (YAML) for the lists."""
    import json

    plain = " ".join(f"-p {k} {v}" for k, v in parameters.items() if not isinstance(v, (list, tuple)))
    lists = {k: list(v) for k, v in parameters.items() if isinstance(v, (list, tuple))}
    yaml = "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in lists.items()) + "}"
    return (plain + (f" -y \"{yaml}\"" if lists else "")).strip()
