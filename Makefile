# `make run` and `make test` do their own set-up; nothing else needs to be installed first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run migrate demo test check bench clean

$(STAMP): pyproject.toml
	@echo "install: [1/3] virtualenv in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "install: [2/3] pip"
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	@echo "install: [3/3] Liaison and its pinned dependencies (about two minutes on a fresh virtualenv)"
	$(BIN)/pip install --progress-bar off --disable-pip-version-check -e '.[dev]'
	@echo "install: done"
	touch $@

# The FHIR R4 models the tests check served resources against need pydantic 1: a virtualenv of their own.
R4 := $(VENV)/r4/.installed
$(R4): tests/fhir/r4-requirements.txt
	test -x $(VENV)/r4/bin/python || $(PYTHON) -m venv $(VENV)/r4
	$(VENV)/r4/bin/pip install -q --disable-pip-version-check -r tests/fhir/r4-requirements.txt
	touch $@


# The AsyncAPI Initiative's parser (npm), which tests/test_asyncapi.py validates /asyncapi.json with:
# pinned by its lockfile; without node and npm (Debian `nodejs`, `npm`) that test skips, outside CI.
ASYNCAPI := tools/asyncapi/node_modules/.installed
$(ASYNCAPI): tools/asyncapi/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix tools/asyncapi --no-audit --no-fund --ignore-scripts --loglevel=error && touch $@; \
	else echo "npm not found: the AsyncAPI validator is not installed (tests/test_asyncapi.py skips)"; fi

install: $(STAMP) $(R4) $(ASYNCAPI)

migrate: install
	$(BIN)/liaison migrate

demo: migrate
	$(BIN)/liaison demo

run: demo
	$(BIN)/liaison serve

# The whole suite with a line-coverage report of the application (what the test process itself runs;
# servers the tests start in processes of their own are not measured). COV_FLOOR: a little under
# the figure measured when it was set, so a change that leaves code untested shows.
# Measured: 86.7% (5780 statements, 771 missed).
COV_FLOOR ?= 85
# The suite runs on two pytest-xdist workers (each with its own PostgreSQL and Redis database), in
# about half the time of one process; TEST_WORKERS=0 runs it in this process (easier to debug).
TEST_WORKERS ?= 2
test: install
	$(BIN)/pytest -n $(TEST_WORKERS) --cov --cov-report=term:skip-covered --cov-fail-under=$(COV_FLOOR) --durations=30

# lint, format and types: what CI runs before the tests
check: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) *.egg-info liaison.db liaison.db-* tools/asyncapi/node_modules
