# Two commands on a fresh machine with Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: demo test test-lowest lint docs clean

$(BIN)/flask: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e . --group tests --group style --group typing --group docs
	touch $@

# Run the example notes app on its embedded SQLite database (created and migrated).
demo: $(BIN)/flask
	$(BIN)/flask --app example_app db prepare
	$(BIN)/flask --app example_app run --host $(HOST) --port $(PORT)

# Run the whole test suite (server tests skip with the reason when no server runs).
test: $(BIN)/flask
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite again on the lowest version of every tested range (nox session tests_lowest).
test-lowest: $(BIN)/flask
	$(BIN)/python -m pip install --quiet -c constraints.txt nox
	$(BIN)/nox -s tests_lowest -- $(PYTEST_ARGS)

lint: $(BIN)/flask
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Build the documentation into docs/_build/html, warnings as errors; it needs no network.
docs: $(BIN)/flask
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

clean:
	rm -rf $(VENV) .nox .pytest_cache .mypy_cache .ruff_cache
