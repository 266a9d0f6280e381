# provnet: two entry points for a fresh machine, `make demo` and `make test`.
# Each sets up .venv and node_modules when they are missing or older than their
# manifests, so a fresh clone needs nothing installed by hand.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.provnet-installed
NPM_STAMP := node_modules/.provnet-installed

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

unit: setup
	$(PY) -m pytest -q -n 2

test: lint unit

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
