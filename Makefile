# Two commands: `make run` (demo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
N ?= 1000000
PG_BENCH_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: install run test lint openapi bench-invoices clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	PORT=$(PORT) BIN=$(BIN) bash scripts/run-demo.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy --follow-imports=silent premium_billing/domain

test: lint
	$(BIN)/pytest -n 2 -p no:cacheprovider

openapi: install
	$(BIN)/premium-billing openapi write --format=json openapi.json

clean:
	rm -rf var .pytest_cache

bench-invoices: install
	$(BIN)/python -m bench.bench_invoices --n $(N) --admin-url $(PG_BENCH_URL)

WEBHOOK_N ?= 5000
bench-webhooks: install
	$(BIN)/python -m bench.bench_webhooks --n $(WEBHOOK_N) --admin-url $(PG_BENCH_URL)

bench-reconcile: install
	$(BIN)/python -m bench.bench_reconcile --lines $(or $(LINES),20000) --invoices $(or $(INVOICES),100000) --admin-url $(PG_BENCH_URL)
