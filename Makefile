# Quick start: `make demo` and `make test`. Both create .venv when missing.
# `make docs` builds the documentation site into site/ (not part of `make test`).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: test demo bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch and torchvision are pinned to the wheels this project is tested with.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/chexplain demo

bench: $(STAMP)
	$(PY) benchmarks/lrp_speed.py

# The docs need only their own pinned tools: the API reference is read from src/ without
# importing it (no torch).
$(DOCS_STAMP): docs/requirements.txt | $(PY)
	$(PY) -m pip install --quiet -r docs/requirements.txt
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m mkdocs build --strict

clean:
	rm -rf runs build site *.egg-info .pytest_cache
