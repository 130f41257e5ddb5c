# The two commands: `make dev` runs the product, `make test` proves it. Both work on a fresh
# machine with only Python 3.11+: they create .venv and install the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SRC    := leadgen_core leadgen_dagster tests bench

.PHONY: install dev test lint typecheck validate pytest bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## make dev: database, sandbox, demo tenants, Dagster UI + daemon on http://127.0.0.1:3000
dev: install
	$(BIN)/leadgen dev

## make test: lint, type checks, `dagster definitions validate`, then the whole pytest suite
test: lint typecheck validate pytest

lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

typecheck: install
	$(BIN)/mypy leadgen_core leadgen_dagster

validate: install
	@mkdir -p .leadgen/validate_home
	DAGSTER_HOME=$(CURDIR)/.leadgen/validate_home LEADGEN_APP_DATABASE_URL=postgresql://validate.invalid/none \
		$(BIN)/dagster definitions validate -w workspace.yaml

pytest: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench.companies_upsert
	$(BIN)/python -m bench.target_selection
	$(BIN)/python -m bench.nightly
	$(BIN)/python -m bench.odoo_sync

clean:
	rm -rf $(VENV) .leadgen .pytest_cache .mypy_cache .ruff_cache
