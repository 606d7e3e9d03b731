# `make run` and `make test` do their own set-up; nothing else needs to be installed first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run migrate demo test check bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP)

migrate: install
	$(BIN)/liaison migrate

demo: migrate
	$(BIN)/liaison demo

run: demo
	$(BIN)/liaison serve

test: install
	$(BIN)/pytest

# lint, format and types: what CI runs before the tests
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) *.egg-info liaison.db liaison.db-*
