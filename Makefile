# CPU-first set-up: torch is installed from its pinned CPU wheel *before* the package,
# so no dependency can pull the multi-GB CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: install demo test bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: install
	$(VENV)/bin/redit compare

test: install
	$(PY) -m pytest -q

bench: install
	$(PY) benchmarks/run_all.py
