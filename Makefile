# One word per task. Every target uses the virtual environment in .venv (made by `make venv`).
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
DATA    ?= $(if $(BINCF_DATA_DIR),$(BINCF_DATA_DIR),$(abspath ../shared/datasets))
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))

.PHONY: venv book execute test test-full bench clean

venv: $(BIN)/jupyter-book
$(BIN)/jupyter-book: requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -r requirements.txt
	touch $@

book: venv  ## build the HTML book from the committed notebook outputs
	$(BIN)/jupyter-book build . --toc book/_toc.yml -W --keep-going

execute: venv  ## re-run every chapter on full settings and store its outputs
	for nb in $(NOTEBOOKS); do \
	  BINCF_DATA_DIR=$(DATA) $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=-1 $$nb || exit 1; \
	done

test: venv  ## unit tests and every chapter under nbval, QUICK mode (what CI runs)
	BINCF_DATA_DIR=$(DATA) BINCF_QUICK=1 $(BIN)/python -m pytest -n 2 --dist loadfile

bench: venv  ## speed and quality benchmarks (long; results under benchmarks/results/)
	for b in $(sort $(wildcard benchmarks/*.py)); do \
	  BINCF_DATA_DIR=$(DATA) $(BIN)/python $$b || exit 1; \
	done

clean:
	rm -rf _build
