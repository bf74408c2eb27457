# edgeexec — `make test` and `make demo` are the two commands; both install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: test fast e2e faults faults-full bench lint typecheck demo standalone sysdeps install clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/python scripts/fetch_compose_schema.py $(VENV)/share/compose-spec
	@touch $(STAMP)

install: $(STAMP)

sysdeps:
	@bash scripts/ensure-sysdeps.sh

lint: $(STAMP)
	$(BIN)/ruff check edgeexec agent batchexec tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

test: install sysdeps lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

# no browser, no fresh venvs, no Airflow: under 2 minutes (tests/tiers.py says which file is where)
fast: install sysdeps
	$(BIN)/pytest -m "not e2e and not faults and not slow and not airflow" $(PYTEST_ARGS)

e2e: install sysdeps
	$(BIN)/pytest -m e2e $(PYTEST_ARGS)

faults: install sysdeps
	$(BIN)/pytest -m faults $(PYTEST_ARGS)

# the churn case at full size: 1000 tasks (make test runs it with 80)
faults-full: install sysdeps
	EDGEEXEC_FAULTS_FULL=1 $(BIN)/pytest -m faults $(PYTEST_ARGS)

# Benchmarks against the Edge provider, Celery and the Amazon provider's Batch executor, in their
# own venv (the peers' providers must not load in the test venv); writes bench/results/*.json and
# docs/benchmarks.md with its plots. Not part of `make test`. BENCH_ARGS passes e.g. --sizes.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.stamp: pyproject.toml $(STAMP)
	@test -x $(BENCH_VENV)/bin/python || $(BIN)/uv venv -q --python $(PY) $(BENCH_VENV)
	$(BIN)/uv pip install -q --python $(BENCH_VENV)/bin/python -e '.[bench]'
	@touch $@

bench: install sysdeps $(BENCH_VENV)/.stamp
	$(BENCH_VENV)/bin/python -m bench.dispatch $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python -m bench.airflow_e2e
	$(BENCH_VENV)/bin/python -m bench.batch
	$(BENCH_VENV)/bin/python -m bench.report

demo: install sysdeps
	$(BIN)/edgeexec demo

STANDALONE_ARGS ?= --dags-folder edgeexec/example_dags
standalone: install sysdeps
	$(BIN)/edgeexec standalone $(STANDALONE_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .demo .pytest_cache .mypy_cache .ruff_cache *.egg-info
