# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO := demo_output

.PHONY: install demo test test-fast lint docs clean-demo

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the pinned version resolves to the local CPU build here, CUDA on a GPU box.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,gui,docs]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

lint: $(STAMP)
	$(VENV)/bin/ruff check incasem scripts tests benchmarks docs/conf.py docs/_ext
	$(VENV)/bin/ruff format --check incasem scripts tests benchmarks docs/conf.py docs/_ext

# The napari painter tests need a display: a virtual one (Xvfb) when there is none.
XVFB := $(if $(DISPLAY),,$(shell command -v xvfb-run >/dev/null 2>&1 && echo xvfb-run -a))

# Test files run in parallel (pytest-xdist), each file whole on one worker so that its
# module-scoped fixtures are built once; TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2

test: lint
	$(XVFB) $(PY) -m pytest -q -ra --durations=10 -n $(TEST_WORKERS) --dist loadfile

# The documentation site (docs/, Sphinx + MyST) into docs/_build/html; warnings are errors.
docs: $(STAMP)
	$(PY) -m sphinx -b html -W --keep-going -q docs docs/_build/html

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" -n $(TEST_WORKERS) --dist loadfile

clean-demo:
	rm -rf $(DEMO)
