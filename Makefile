# The two commands: `make dev` runs the product, `make test` proves it. Both work on a fresh
# machine with only Python 3.11+: they create .venv and install the project first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SRC    := leadgen_core leadgen_dagster tests bench

.PHONY: install chromium dev test e2e lint typecheck validate pytest bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## make dev: database, sandbox, demo tenants, Dagster UI + daemon on http://127.0.0.1:3000
dev: install
	$(BIN)/leadgen dev

## make test: lint, type checks, `dagster definitions validate`, then the whole pytest suite (the browser
## walkthrough in tests/e2e included)
test: lint typecheck validate pytest

## make e2e: the README walkthrough in a real browser against `leadgen dev` (tests/e2e; screenshots in
## tests/e2e/screenshots/). It drives Debian's Chromium, never a downloaded browser.
e2e: install chromium
	$(BIN)/pytest -q -p no:randomly tests/e2e

## Debian's Chromium for the browser tests: when /usr/bin/chromium is missing and we run as root (CI
## does), this runs `apt-get update` then `apt-get install -y chromium`; otherwise it says what to run.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Debian's chromium for tests/e2e: apt-get update && apt-get install -y chromium"; \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
		else \
			echo "$(CHROMIUM) is missing: run 'sudo apt-get install -y chromium' (make does it itself as root)"; \
			exit 1; \
		fi; \
	fi

lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

typecheck: install
	$(BIN)/mypy leadgen_core leadgen_dagster

validate: install
	@mkdir -p .leadgen/validate_home
	DAGSTER_HOME=$(CURDIR)/.leadgen/validate_home LEADGEN_APP_DATABASE_URL=postgresql://validate.invalid/none \
		$(BIN)/dagster definitions validate -w workspace.yaml

pytest: install chromium
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench.companies_upsert
	$(BIN)/python -m bench.target_selection
	$(BIN)/python -m bench.nightly
	$(BIN)/python -m bench.odoo_sync
	$(BIN)/python -m bench.page_cpu
	$(BIN)/python -m bench.http_cpu
	$(BIN)/python -m bench.crawl_cpu

clean:
	rm -rf $(VENV) .leadgen .pytest_cache .mypy_cache .ruff_cache tests/e2e/screenshots
