# Quick start: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench clean

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

clean:
	rm -rf runs build *.egg-info .pytest_cache
