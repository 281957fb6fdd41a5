# One command per task. `make run` starts a server on the embedded default; `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= data

.PHONY: run test check bench bench-envelope clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

tests/js/node_modules/.installed: tests/js/package.json tests/js/package-lock.json
	npm install --silent --no-audit --no-fund --prefix tests/js
	touch $@

run: $(BIN)/.installed
	$(BIN)/openkms --data-dir $(DATA_DIR) server

test: check tests/js/node_modules/.installed
	$(BIN)/python -m pytest -n 2 --dist loadfile

check: $(BIN)/.installed
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/load.py

bench-envelope: $(BIN)/.installed
	$(BIN)/python benchmarks/envelope.py

clean:
	rm -rf $(VENV) tests/js/node_modules .pytest_cache .mypy_cache .ruff_cache
