# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: demo test test-lowest lint docs clean

# Two installs, each with its stamp: the package alone (what serving the example needs) and
# the package with every dependency group (the tests, the linters, the docs).
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# --no-compile: the first import compiles only the modules the app uses (halves the install).
$(RUNTIME): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-compile --disable-pip-version-check -c constraints.txt -e .
	touch $@

# Dependency groups need pip 25.1.
$(DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e . --group tests --group style --group typing --group docs
	touch $@ $(RUNTIME)

# Run the example notes app on its embedded SQLite database (created and migrated).
demo: $(RUNTIME)
	$(BIN)/flask --app example_app db prepare
	$(BIN)/flask --app example_app run --host $(HOST) --port $(PORT)

# Run the whole test suite on every core (server tests skip with the reason when no server
# runs; pyproject's addopts show the reasons). PYTEST_ARGS replaces the default.
PYTEST_ARGS ?= -n auto
test: $(DEV)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite again on the lowest version of every tested range (nox session tests_lowest).
test-lowest: $(DEV)
	$(BIN)/python -m pip install --quiet -c constraints.txt nox
	$(BIN)/nox -s tests_lowest -- $(PYTEST_ARGS)

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Build the documentation into docs/_build/html, warnings as errors; it needs no network.
docs: $(DEV)
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) .nox .pytest_cache .mypy_cache .ruff_cache
