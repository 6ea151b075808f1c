# Two commands for a fresh machine (Python 3.11+ with pip, no GPU):
#   make run    set up .venv and run the main job
#   make test   set up .venv and run the test suite (the small sizes; slow tests deselected)
# Also: make test-slow (only the slow tests), make test-all (every test).
# Also: make lint (ruff and pyright), make docs (the API reference site, in site/).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: run test test-slow test-all lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The docs tools are heavier than the tests need: installed only for `make docs`.
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,docs]"
	touch $(DOCS_STAMP)

run: $(STAMP)
	$(BIN)/flatjax reproduce --quick

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" -n 2

# The large sizes the default command deselects (the quick reproduction, ...).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow -n 2

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright --pythonpath $(BIN)/python

# Warnings are errors (--strict); nothing is fetched from the network at build time.
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
