# Cherry Sync — two set-up commands: `make demo` and `make test`. Python 3.11 is the only prerequisite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test airflow sandboxes lint bench lock clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Cherry Sync needs Python 3.11 (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The pinned dev set (requirements-dev.txt: the runtime pins + test and lint tools), then the project itself,
# editable and without dependencies: its provider entry point (connection types `cherry` and `aesthetix_crm` in
# the Airflow UI of `make airflow`), the code staying in plugins/.
$(INSTALLED): requirements.txt requirements-dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

## demo: run the pipelines end to end on the embedded default (SQLite, sandboxes on loopback)
demo: $(INSTALLED)
	$(BIN)/python scripts/demo.py

## test: the whole test suite (PostgreSQL tests skip with a reason outside CI when no server is up), on
## TEST_WORKERS processes (pytest-xdist; a test module stays on one worker, so module fixtures start once;
## TEST_WORKERS=0 runs in this process)
TEST_WORKERS ?= 2
test: $(INSTALLED)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## airflow: `airflow standalone` with the sandboxes and the demo practices (UI at http://127.0.0.1:8080)
airflow: $(INSTALLED)
	$(BIN)/python scripts/demo.py --standalone

## sandboxes: both API sandboxes in the foreground (see `python -m sandbox --help`)
sandboxes: $(INSTALLED)
	$(BIN)/python -m sandbox

lint: $(INSTALLED)
	$(BIN)/ruff check .

bench: $(INSTALLED)
	$(BIN)/python -m bench

## lock: re-pin requirements.txt (runtime: the image) and requirements-dev.txt (+ test tools) from pyproject.toml
lock: | $(BIN)/python
	$(BIN)/python scripts/lock.py

clean:
	rm -rf .demo .airflow test-artifacts .pytest_cache build dist plugins/*.egg-info
