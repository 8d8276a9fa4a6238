# evo2kit: one command to set up and run the tutorials (`make tutorial`), one to test (`make test`).
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.evo2kit-installed
# The CPU build of torch; override for a GPU machine, e.g. `make setup TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= cpu
# Threads for the notebook kernels; empty: PyTorch's default (the physical cores). THREADS=1 suits a busy machine.
THREADS ?=
RUN := $(PY) -m evo2kit.tutorial.runner $(if $(THREADS),--threads $(THREADS))
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
QUIET_PIP := grep -v 'is ignored: it is neither' || true

.PHONY: setup tutorial smoke test test-fast bench clean lab docs docs-check

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c 'import torch' 2>/dev/null || $(PIP) "$(TORCH_SPEC)" 2>&1 | $(QUIET_PIP)
	@$(PIP) -e ".[test]" 2>&1 | $(QUIET_PIP)
	@$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@$(PY) -c 'import evo2kit, torch, vortex; print("evo2kit", evo2kit.__version__, "| torch", torch.__version__)'
	@touch $(STAMP)

tutorial: setup
	$(RUN) --profile $(PROFILE) $(if $(SEED),--set seed=$(SEED))

smoke: setup
	$(RUN) --profile smoke $(if $(SEED),--set seed=$(SEED))

# ruff first: a lint finding (pyproject.toml's [tool.ruff]) fails make test before the suite runs.
test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

# The working loop: every test but those marked slow (the notebook runs, the site, JupyterLab, torchrun,
# kill -9 and vortex parity checks): a few minutes. CI runs make test.
test-fast: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow"

# JupyterLab on notebooks/ with the python3 kernel. jupytext's server extension (enabled in the venv
# by installing jupytext) opens the .py notebooks and saves each .ipynb and its .py twin together.
# LAB_ARGS passes more options, e.g. LAB_ARGS="--no-browser --port 8899".
lab: setup
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=notebooks $(LAB_ARGS)

# The site of build/$(PROFILE)'s executed notebooks, into build/site/$(PROFILE)/ (evo2kit/tutorial/docs.py).
docs: setup
	$(PY) -m evo2kit.tutorial.docs --profile $(PROFILE)

# The same, then every page opened in headless Chromium (Debian: apt-get install chromium):
# a screenshot each in build/site/screenshots/, and a failure on any console error.
docs-check: setup
	$(PY) -m evo2kit.tutorial.docs --profile $(PROFILE) --check-in-browser

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

# docs/running.md's list: build/ and the tools' caches; never .venv or the data cache (~/.cache/evo2kit).
clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
	find . -path ./.venv -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) -prune -exec rm -rf {} +
