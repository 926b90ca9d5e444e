# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO := demo_output

.PHONY: install demo test test-fast lint clean-demo

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the pinned version resolves to the local CPU build here, CUDA on a GPU box.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

$(DEMO)/synthetic_cell.zarr: | $(STAMP)
	$(VENV)/bin/incasem phantom --out $@ --shape 256 256 256 --seed 0

demo: $(STAMP) $(DEMO)/synthetic_cell.zarr
	$(VENV)/bin/incasem validate configs/data/synthetic_mito_train.json,configs/data/synthetic_mito_validation.json --data-root $(DEMO) --num-classes 2
	$(VENV)/bin/incasem plot-slice $(DEMO)/synthetic_cell.zarr --z 40 --labels volumes/labels/mito volumes/labels/er volumes/labels/golgi volumes/labels/nucleus -o $(DEMO)/synthetic_cell_z40.png
	@echo "demo done: outputs in $(DEMO)/"

lint: $(STAMP)
	$(VENV)/bin/ruff check incasem scripts tests benchmarks
	$(VENV)/bin/ruff format --check incasem scripts tests benchmarks

test: lint
	$(PY) -m pytest -q -ra --durations=10

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

clean-demo:
	rm -rf $(DEMO)
