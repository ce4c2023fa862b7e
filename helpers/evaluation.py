"""How notebook 03 scores a trained network: held-out accuracy with confusion matrices, the user-forms shortfall,
the summary of a run in words (each sentence computed from the run's numbers), and the results file that
notebooks 05 and 06 read."""
from __future__ import annotations

import numpy as np

from . import models, provenance
from .robustness import robustness_sentences
from .structures import CLASSES

RESULTS_FILE = "cnn_results.json"


def held_out(model, sets: dict) -> dict:
    """Score ``model`` on every fingerprint set of ``sets`` ({name: FingerprintSet}), one fingerprint per structure.

    Returns
    -------
    dict
        {name: {"probability", "predicted", "confusion" (rows true, columns predicted), "precision", "recall",
        "accuracy", "n"}}.
    """
    out = {}
    for name, fps in sets.items():
        probability = models.predict_proba(model, fps.X)
        predicted = probability.argmax(axis=1)
        matrix = models.confusion(fps.y, predicted)
        precision, recall = models.precision_recall(fps.y, predicted)
        out[name] = {"probability": probability, "predicted": predicted, "confusion": matrix,
                     "precision": precision, "recall": recall, "accuracy": float(np.trace(matrix) / matrix.sum()),
                     "n": int(len(fps.y))}
    return out


def per_class_table(scores: dict, class_names=CLASSES):
    """One set's scores (an entry of :func:`held_out`) per class: members, precision and recall."""
    import pandas as pd

    return pd.DataFrame({"class": list(class_names), "n": scores["confusion"].sum(axis=1),
                         "precision": scores["precision"], "recall": scores["recall"]})


def confusion_table(matrix, class_names=CLASSES):
    """A confusion matrix as a DataFrame, rows (index "true") and columns named by class."""
    import pandas as pd

    return pd.DataFrame(np.asarray(matrix), index=pd.Index(list(class_names), name="true"), columns=list(class_names))


def largest_shortfall(forms_summary) -> tuple:
    """From :func:`helpers.user_forms.study`'s summary: the small cells' pristine accuracy, and the form and defect
    whose accuracy falls furthest below it, with the gap in points: ``(small, "form, defect", gap)``."""
    table = forms_summary.set_index("form")
    small = float(table.loc["small cell", "pristine"])
    gaps = {f"{form}, {defect}": 100 * (small - v) for form, row in table.iterrows()
            for defect, v in row.drop("n per cell").items() if v == v and form != "small cell"}
    worst = max(gaps, key=gaps.get)
    return small, worst, gaps[worst]


def summary_lines(results: dict, table) -> list:
    """Notebook 03's summary, one Markdown bullet per measured result."""
    params, acc = results["params"], results["accuracy"]
    lines = [f"* Held-out accuracy, one fingerprint per structure (n = {results['n']['test_pristine']} each): "
             f"pristine {100 * acc['test_pristine']:.2f} %, {100 * params['vacancy_fraction']:g} % vacancies "
             f"{100 * acc['test_vacancies']:.2f} %, displacements σ = {100 * params['displacement_sigma']:g} % "
             f"{100 * acc['test_displacements']:.2f} % (data made with orientation = {params['orientation']!r})."]
    lines += [f"* {s[0].upper()}{s[1:]}" for s in robustness_sentences(table)]
    small, worst, gap = results["user_forms_shortfall"]
    lines.append(f"* Real crystals in the forms users give them: small cells {100 * small:.2f} % named right; the "
                 f"largest shortfall of a supercell form {gap:.2f} points ({worst}).")
    wrong = results["misclassified"]
    lines.append(f"* Wrong answers among the {wrong['n']} held-out and defective fingerprints: {wrong['wrong']}.")
    return lines


def results_path():
    from . import config

    return config.data_dir() / RESULTS_FILE


def save_results(results: dict, params: dict, model_path) -> None:
    """Write data/cnn_results.json with its provenance: the data parameters and the model file it scored."""
    provenance.save_json(results_path(), results,
                         provenance.record(provenance.NOTEBOOK_03, params, inputs=[model_path], fingerprint=True))


def load_results(expect: dict | None = None) -> dict:
    """What notebook 03 saved, checked against the data parameters ``expect`` and against the model file it
    scored (a model retrained since makes it stale)."""
    return provenance.load_json(results_path(), provenance.NOTEBOOK_03, expect)
