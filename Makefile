# One word per task. Every target uses the virtual environment in .venv (made by `make venv`).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
NPM     ?= npm
DATA    ?= $(if $(BINCF_DATA_DIR),$(BINCF_DATA_DIR),$(abspath ../shared/datasets))
NOTEBOOKS ?= $(sort $(wildcard notebooks/*.ipynb))
# `make reproduce DATASET=ml-100k SEEDS="0 1"`: the tables of the results chapter.
DATASET ?= ml-1m
SEEDS   ?= 0 1 2 3 4
# worker processes of `reproduce` (one torch thread each); the number of cores
JOBS    ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: venv npm book browser-test execute test bench reproduce clean

venv: $(BIN)/jupyter-book
$(BIN)/jupyter-book: requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	touch $@

# The browser-side files the book serves itself (widget manager, MathJax), pinned in
# package-lock.json; book/_ext/local_assets.py copies them into _build/html/_static/.
npm: node_modules/.package-lock.json
node_modules/.package-lock.json: package.json package-lock.json
	$(NPM) ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

book: venv npm  ## build the HTML book from the committed notebook outputs
	$(BIN)/jupyter-book build . --toc book/_toc.yml -W --keep-going

browser-test: book  ## open the intro and every chapter in headless Chromium; screenshots in _build/screenshots
	$(BIN)/python scripts/browser_test.py

# nbclient's `jupyter execute` stores the kernel's widget state in the notebook's metadata
# (NotebookClient.store_widget_state is True by default): the sliders render in the book.
execute: venv  ## re-run every chapter (or NOTEBOOKS=...) on full settings; store outputs and widget state
	for nb in $(NOTEBOOKS); do \
	  echo "executing $$nb"; \
	  BINCF_DATA_DIR=$(DATA) $(BIN)/jupyter execute --inplace --timeout=-1 $$nb || exit 1; \
	done

test: venv  ## unit tests and every chapter under nbval, QUICK mode (what CI runs)
	BINCF_DATA_DIR=$(DATA) BINCF_QUICK=1 $(BIN)/python -m pytest -n 2 --dist loadfile

bench: venv  ## speed and quality benchmarks (long; results under benchmarks/results/)
	for b in $(sort $(wildcard benchmarks/*.py)); do \
	  BINCF_DATA_DIR=$(DATA) $(BIN)/python $$b || exit 1; \
	done

reproduce: venv  ## every model over the split seeds: the results tables (long; results/)
	BINCF_DATA_DIR=$(DATA) $(BIN)/bincf-lite reproduce --dataset $(DATASET) --seeds $(SEEDS) --jobs $(JOBS) --out results

clean:
	rm -rf _build
