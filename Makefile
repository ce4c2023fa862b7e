# Set-up is part of every target: the virtual environment .venv is created and the project
# installed (editable, with test extras) the first time, and again when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: env run test bench bench-train recipe scale seeds lab clean-data

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

## run: every notebook of the series, in order, at the default (paper) size -> executed/
run: $(STAMP)
	$(BIN)/python -m helpers.series

## test: unit tests and every notebook through papermill with small parameters
test: $(STAMP)
	$(BIN)/python -m pytest

## bench: fingerprint speed against the complex128 reference, measured in the same run
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_fingerprint.py

## bench-train: CNN training speed per backend / thread setting against TensorFlow's defaults, same run
bench-train: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py

## recipe: the paper's recipe against each addition and against bfloat16 arithmetic, on data/ (after make run)
recipe: $(STAMP)
	$(BIN)/python benchmarks/recipe_study.py

## scale: how far vacancies and displacements move the fingerprint's scale, per prototype (a few minutes)
scale: $(STAMP)
	$(BIN)/python benchmarks/scale_bias.py

## seeds: 5 training seeds x 2 held-out draws, 16 views each, on randomly oriented data/ (about an hour)
seeds: $(STAMP)
	$(BIN)/python benchmarks/seed_study.py

## lab: open the series in JupyterLab
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean-data:
	rm -rf data/*.npz data/cnn_* figures/*.png figures/tables executed/
