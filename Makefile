# One entry point per task. Every target creates the environment from uv.lock first.
SHELL := /bin/bash
PYTHON ?= python3
UV_DIR := .tools
UV := $(UV_DIR)/bin/uv
UV_VERSION := 0.13.8
export UV_PROJECT_ENVIRONMENT := .venv
export DAGSTER_HOME := $(CURDIR)/.dagster_home
RUN := $(UV) run --frozen --no-sync

.PHONY: help install test test-fast lint typecheck check-defs pytest pytest-fast wheel demo dev bench bench-smoke sandbox clean

help:
	@echo "make demo   - run the whole pipeline end to end on the sandbox"
	@echo "make test   - lint, type-check, check the definitions, run the whole test suite (CI)"
	@echo "make test-fast - the same without the slow tests (daemon, backfills, wheel install)"
	@echo "make wheel  - build the installable wheel into dist/"
	@echo "make dev    - Dagster UI and daemon on http://127.0.0.1:3000 (dg dev)"
	@echo "make check-defs - load every definition as Dagster does (dg check defs)"
	@echo "make bench  - benchmarks, results in bench/README.md"

$(UV):
	$(PYTHON) -m venv $(UV_DIR)
	$(UV_DIR)/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --all-extras
	@touch $@

install: .venv/.synced

lint: install
	$(RUN) ruff check .

typecheck: install
	$(RUN) mypy

check-defs: install $(DAGSTER_HOME)/dagster.yaml
	$(RUN) dg check defs

pytest: install
	$(RUN) pytest -q

pytest-fast: install
	$(RUN) pytest -q -m "not slow"

test: lint typecheck check-defs pytest

test-fast: lint typecheck check-defs pytest-fast

wheel: install
	$(UV) build --wheel --out-dir dist

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(RUN) objectives-pipeline demo

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(RUN) dg dev --host 127.0.0.1 --port 3000

bench: install
	$(RUN) python -m bench.run

sandbox: install
	$(RUN) objectives-pipeline sandbox

# The embedded sandbox is stopped first: clean leaves no process behind.
clean:
	@if [ -x .venv/bin/python ] && [ -d data/sandbox ]; then .venv/bin/python -c "from pathlib import Path; from objectives_pipeline.sandbox.embedded import stop_sandbox; print('stopped the embedded sandbox' if stop_sandbox(Path('data/sandbox')) else 'no embedded sandbox was running')"; fi
	rm -rf .venv $(UV_DIR) .dagster_home data/*.duckdb data/*.duckdb.start_date data/sandbox
