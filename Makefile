# provnet: two entry points for a fresh machine, `make demo` and `make test`.
# Each sets up .venv and node_modules when they are missing or older than their
# manifests, so a fresh clone needs nothing installed by hand.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.provnet-installed
NPM_STAMP := node_modules/.provnet-installed
# The fast PSI engine (spu, numpy<2) and the PSI benchmark's baselines get venvs of
# their own: see their targets below.
FAST_PSI_VENV := .venv-fast-psi
FAST_PSI_STAMP := $(FAST_PSI_VENV)/.installed
BASELINES_VENV := .venv-psi-baselines
BASELINES_STAMP := $(BASELINES_VENV)/.installed

.PHONY: demo test lint typecheck unit setup clean

setup: $(STAMP) $(NPM_STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(VENV)/bin/provnet demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: setup $(FAST_PSI_STAMP)
	$(PY) -m pytest -q -n 2

test: lint unit

clean:
	rm -rf $(VENV) $(FAST_PSI_VENV) $(BASELINES_VENV) node_modules .pytest_cache .mypy_cache .ruff_cache

# PSI benchmark baselines (scripts/bench/psi.py): openmined-psi and SecretFlow spu
# pin protobuf versions that conflict with the project's, so they get a venv of
# their own. About 1 GB of downloads; only the PSI benchmark uses it.
.PHONY: bench-baselines
bench-baselines: $(BASELINES_STAMP)

$(BASELINES_STAMP):
	test -x $(BASELINES_VENV)/bin/python || python3.11 -m venv $(BASELINES_VENV)
	echo '*' > $(BASELINES_VENV)/.gitignore  # keeps git and ruff out of it
	$(BASELINES_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BASELINES_VENV)/bin/python -m pip install --quiet 'numpy<2' 'openmined-psi==2.0.6' 'spu==0.9.5'
	touch $@

# Fast PSI mode (node/fastpsi): SecretFlow spu's C++ PSI (RR22 over OT/VOLE) runs in a
# sidecar subprocess with a venv of its own, since spu needs numpy<2 and the node
# pins numpy 2. About 1 GB (jax); see docs/fast-psi.md.
.PHONY: fast-psi
fast-psi: $(FAST_PSI_STAMP)

$(FAST_PSI_STAMP): node/fastpsi/requirements.txt
	test -x $(FAST_PSI_VENV)/bin/python || $(PYTHON) -m venv $(FAST_PSI_VENV)
	echo '*' > $(FAST_PSI_VENV)/.gitignore  # keeps git and ruff out of it
	$(FAST_PSI_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FAST_PSI_VENV)/bin/python -m pip install --quiet -r node/fastpsi/requirements.txt
	touch $@

# FL benchmark baseline (scripts/bench/fl.py): flwr's SecAgg+ client masking. flwr's
# pins conflict with the project's, so it gets a venv of its own; only that benchmark
# uses it.
FL_BASELINES_VENV := .venv-fl-baselines
FL_BASELINES_STAMP := $(FL_BASELINES_VENV)/.installed

.PHONY: bench-fl-baselines
bench-fl-baselines: $(FL_BASELINES_STAMP)

$(FL_BASELINES_STAMP):
	test -x $(FL_BASELINES_VENV)/bin/python || python3.11 -m venv $(FL_BASELINES_VENV)
	echo '*' > $(FL_BASELINES_VENV)/.gitignore  # keeps git and ruff out of it
	$(FL_BASELINES_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FL_BASELINES_VENV)/bin/python -m pip install --quiet 'flwr==1.42.0'
	touch $@
