# The README's quick start: `make demo` and `make test` on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Test processes (pytest-xdist): the end-to-end tests wait on servers and subprocesses, so two workers use
# two cores where one leaves them half idle.
TEST_WORKERS ?= 2

.PHONY: demo test test-slow lint ui bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/clinic-pipeline demo

test: $(STAMP)
	$(BIN)/ruff check clinic_pipeline clinic_pipeline_tests
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

# The scenarios that take minutes (30 % faults with timeouts, a third-party client over TLS, repair, delta
# and rollback on a generated clinic, the browser): CI runs them as a step of their own after `make test`.
test-slow: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal clinic_pipeline_tests -m slow --ignore=clinic_pipeline_tests/benchmarks

lint: $(STAMP)
	$(BIN)/ruff check clinic_pipeline clinic_pipeline_tests
	$(BIN)/ruff format --check clinic_pipeline clinic_pipeline_tests

# The Dagster UI on the demo: a sandbox on a fixed port, then `dagster dev` pointed at it, on the instance
# the demo recorded its runs in (data/dagster, or DAGSTER_HOME when set).
ui: $(STAMP)
	$(BIN)/clinic-pipeline ui

bench: $(STAMP)
	$(BIN)/pytest clinic_pipeline_tests/benchmarks -m slow -p no:cacheprovider -q

clean:
	rm -rf data/source data/plan data/staged data/quarantine data/state data/reports data/sandbox data/load data/inventory
