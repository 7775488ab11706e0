# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: demo test test-slow test-all test-lowest lint docs clean

# Three installs, each with its stamp: the package alone (what serving the example needs), the
# package with the test tools, and the package with every dependency group (linters, docs).
RUNTIME := $(VENV)/.installed-runtime
TESTS := $(VENV)/.installed-tests
DEV := $(VENV)/.installed-dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# --no-compile: the first import compiles only the modules the app uses (halves the install).
$(RUNTIME): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-compile --disable-pip-version-check -c constraints.txt -e .
	touch $@

# Dependency groups need pip 25.1.
$(TESTS): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e . --group tests
	touch $@ $(RUNTIME)

$(DEV): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e . --group tests --group style --group typing --group docs
	touch $@ $(TESTS) $(RUNTIME)

# Run the example notes app on its embedded SQLite database (created and migrated).
demo: $(RUNTIME)
	$(BIN)/flask --app example_app db prepare
	$(BIN)/flask --app example_app run --host $(HOST) --port $(PORT)

# Run the test suite on every core (server tests skip with the reason when no server runs;
# pyproject's addopts show the reasons), but for the slow group: whole processes, servers and
# builds, which `make test-slow` runs (`make test-all`: both; CI runs every test).
# PYTEST_ARGS replaces the default.
PYTEST_ARGS ?= -n auto -m "not slow"
# The suite starts hundreds of Python processes (pytest runs, flask commands, servers): with
# bytecode caching off in the environment, each would compile every module it imports again.
test test-slow test-all test-lowest: export PYTHONDONTWRITEBYTECODE :=
test: $(TESTS)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-slow: $(TESTS)
	$(BIN)/python -m pytest -n auto -m slow

test-all: $(TESTS)
	$(BIN)/python -m pytest -n auto

# The suite again on the lowest version of every tested range (nox session tests_lowest).
test-lowest: $(TESTS)
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
