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

$(INSTALLED): requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

## demo: run the pipelines end to end on the embedded default (SQLite, sandboxes on loopback)
demo: $(INSTALLED)
	$(BIN)/python scripts/demo.py

## test: the whole test suite (PostgreSQL tests skip with a reason outside CI when no server is up)
test: $(INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

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

## lock: re-pin requirements.txt from requirements.in
lock: | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.in
	$(BIN)/pip freeze --exclude-editable | grep -v '^pip==\|^setuptools==' > requirements.txt

clean:
	rm -rf .demo .airflow test-artifacts .pytest_cache
