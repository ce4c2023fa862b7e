"""Every public function that starts worker processes works however the caller's Python was started: a script
file (without an ``if __name__ == "__main__":`` guard, as users write them), a script on standard input and
``python -c``. (Notebooks are covered by tests/test_notebooks.py.)"""
import subprocess
import sys

import pytest

from helpers import models

SCRIPT = """
import numpy as np
from ase.build import bulk
from helpers.classify import classify
from helpers.datasets import generate_structure_sets
from helpers.fingerprint import diffraction_fingerprints

atoms = [bulk(e, s, a=a, cubic=True).repeat(3) for e, s, a in [("Cu", "fcc", 3.6), ("W", "bcc", 3.16)] * 20]
X = diffraction_fingerprints(atoms, n_jobs=2, progress=False, chunk_size=8)
sets = generate_structure_sets(n_per_class=3, n_test_per_class=1, seed=1, n_jobs=2, progress=False)
table = classify(atoms, n_mc=2, n_jobs=2)  # 40 inputs: the batch goes to worker processes
print("RESULT", X.shape[0], len(sets["train"]), int(table["error"].isna().sum()))
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    models.save_model(models.build_model(seed=0), {"epochs": 0}, directory=directory)
    return directory


def run(args, data_dir, stdin=None, cwd=None):
    env = {"CRYSTAL_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=600,
                          env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "RESULT 40 21 40" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_script_on_standard_input(data_dir):
    run(["-"], data_dir, stdin=SCRIPT)


def test_python_dash_c(data_dir):
    run(["-c", SCRIPT], data_dir)


def test_script_file_without_a_main_guard(data_dir, tmp_path):
    path = tmp_path / "my_script.py"
    path.write_text(SCRIPT)
    run([str(path)], data_dir, cwd=tmp_path)
