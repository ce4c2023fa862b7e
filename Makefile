# Set-up is part of every target: the virtual environment .venv is created and the project
# installed (editable, with test extras) the first time, and again when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: env run results pretrained test browser book bench bench-series bench-exercises bench-scale bench-local bench-train bench-classify ae-seeds liquids recipe scale seeds lab clean-data

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

## run: every notebook of the series, in order, at the default (paper) size -> executed/
run: $(STAMP)
	$(BIN)/python -m helpers.series

## results: copy the results page of the last run (figures/RESULTS.md) to docs/results.md and its headline table
## into README.md
results: $(STAMP)
	$(BIN)/python -m helpers.results --publish

## pretrained: ship the three models of a default-size run (make run) in helpers/pretrained: notebooks 04-07 use them
## when 03 or 07 has not trained here and the data are exactly those they were trained on, and the tests of classify
## check that they name real crystals in any orientation (the tests say when the shipped models are stale); 08's
## window network is helpers.local.structure_map's default
pretrained:
	mkdir -p helpers/pretrained
	cp data/cnn_model.keras data/cnn_model.json data/cnn_any_orientation.keras data/cnn_any_orientation.json \
	   data/cnn_local.keras data/cnn_local.json helpers/pretrained/

## test: unit tests and every notebook through papermill with small parameters, in two worker processes that take
## whole files (pytest-xdist): the notebook series, about half of the time, runs beside all the other tests
test: $(STAMP) browser
	$(BIN)/python -m pytest -n 2 --dist loadfile

## browser: the headless Chromium that the course book's browser test drives, from the system's packages (Debian's
## chromium; browser builds are never downloaded): installed when missing and this is a root shell with apt-get
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "no Chromium here: install your system's chromium package for the book's browser test"

## book: the course book (executed series, start page, glossary, science, solutions, results, REPORT.md) as a static
## site in book/ from the last make run, checked page by page in headless Chromium; screenshots of the start page
## and of 03 in figures/book_start.png and figures/book_03.png
book: $(STAMP) browser
	$(BIN)/python -m helpers.book

## bench: fingerprint speed against the complex128 reference, and the neighbour search of the scale (k-d trees
## against the all-pairs scan at 1k, 10k and 100k atoms), each measured in the same run, with this CPU's
## instruction sets and with AVX2 + FMA only -> benchmarks/results/bench_{fingerprint,neighbours}_{native,avx2}.*
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_fingerprint.py
	$(BIN)/python benchmarks/bench_fingerprint.py --isa avx2
	$(BIN)/python benchmarks/bench_neighbours.py
	$(BIN)/python benchmarks/bench_neighbours.py --isa avx2

## bench-scale: the streaming batch on Dask (helpers.batch) against the process pool: structures/s with 1 and 2
## workers, peak memory at 10,000 and 100,000 structures, resuming after a kill, .npz against ASE database reads
## (about 20 minutes) -> benchmarks/results/bench_scale.md
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/bench_scale.py

## bench-local: the local-structure map (helpers.local) of fcc snapshots of 100,000 and 1,000,000 atoms on a Dask
## LocalCluster: seconds, atoms/s and peak memory, beside PTM and a-CNA on the same atoms in the same run (about an
## hour on 2 cores) -> benchmarks/results/bench_local_native.md
bench-local: $(STAMP)
	$(BIN)/python benchmarks/bench_local.py

## ae-seeds: the dense autoencoder's Table 5 row (notebook 05) over five seeds, with the report's ReLU code and with a
## linear one, on 01's default-size balanced fingerprints (about 12 minutes on 2 cores) -> benchmarks/results/ae_seeds.md
ae-seeds: $(STAMP)
	$(BIN)/python benchmarks/ae_seeds.py

## bench-series: the whole series at its default size, natively and with the CPU held to AVX2 + FMA (oneDNN, numba,
## numpy, OpenBLAS), each in its own data folder; seconds per notebook, the ratio to the native run and the slowest
## cells of each (about an hour and a half on 2 cores) -> benchmarks/results/bench_series.md
bench-series: $(STAMP)
	$(BIN)/python benchmarks/bench_series.py

## bench-exercises: every exercise's rerun with the CPU held to AVX2 + FMA, each from a copy of data/ (after make run)
## -> benchmarks/results/bench_exercises_avx2.md, listed on the results page
bench-exercises: $(STAMP)
	$(BIN)/python benchmarks/bench_exercises.py --isa avx2

## bench-train: CNN training speed per backend / thread setting against TensorFlow's defaults, same run
bench-train: $(STAMP)
	$(BIN)/python benchmarks/bench_training.py

## bench-classify: classify with 07's orientation-free model (16 views, MC dropout): structures/s against one view
## at a time, same run (after make run)
bench-classify: $(STAMP)
	$(BIN)/python benchmarks/bench_classify.py

## liquids: molten (2 Tm) and solid (0.25-0.75 Tm) EMT snapshots of seven fcc metals through classify: which answers
## it marks as not to be trusted (about 15 minutes on 2 cores) -> benchmarks/results/liquids.md
liquids: $(STAMP)
	$(BIN)/python benchmarks/liquids.py

## recipe: the paper's recipe against each addition and against bfloat16 arithmetic, on data/ (after make run)
recipe: $(STAMP)
	$(BIN)/python benchmarks/recipe_study.py

## scale: how far vacancies and displacements move the fingerprint's scale, per prototype (a few minutes)
scale: $(STAMP)
	$(BIN)/python benchmarks/scale_bias.py

## seeds: 5 training seeds x 2 held-out draws, 16 views each, on notebook 07's randomly oriented data (after make run)
seeds: $(STAMP)
	$(BIN)/python benchmarks/seed_study.py

## lab: open the series in JupyterLab
lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

clean-data:
	rm -rf data/*.npz data/cnn_* figures/*.png figures/tables executed/
