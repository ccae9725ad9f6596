# The two commands of the README. Both create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP_RUN  := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-dev

.PHONY: run test lint typecheck protos-check protos pytest clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@ $(STAMP_RUN)

## make run: the main job on the embedded default: simulate simulations/demo.toml into out/demo.
run: $(STAMP_RUN)
	$(VENV)/bin/dispatch simulate simulations/demo.toml --out out/demo

## make test: ruff, mypy, the proto drift check, then pytest (benchmarks once, as a smoke test).
test: $(STAMP_TEST) lint typecheck protos-check pytest

lint: $(STAMP_TEST)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

typecheck: $(STAMP_TEST)
	$(VENV)/bin/mypy

protos-check: $(STAMP_TEST)
	$(PY) scripts/gen_protos.py --check

protos: $(STAMP_TEST)
	$(PY) scripts/gen_protos.py

pytest: $(STAMP_TEST)
	$(VENV)/bin/pytest -q --benchmark-disable

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks src/dispatch/kernels/__pycache__
