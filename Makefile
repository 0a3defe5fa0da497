# Two commands: `make run` (demo) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
N ?= 1000000
PG_BENCH_URL ?= postgresql://postgres@127.0.0.1:5432/postgres

.PHONY: install run test lint browser openapi schemathesis bench-invoices bench-webhooks bench-reconcile bench-aging clean bench-senders bench-collections bench-dashboard

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# exec: make's child is the script itself, so a SIGTERM to make (which make passes on to
# its children) reaches the script's trap, which stops every process the demo started.
run: install
	PORT=$(PORT) BIN=$(BIN) exec bash scripts/run-demo.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy --follow-imports=silent premium_billing/money.py premium_billing/errors.py premium_billing/clock.py premium_billing/policies/rules premium_billing/invoicing/rules.py premium_billing/payments/rules.py premium_billing/ledger/rules.py premium_billing/audit/chain.py premium_billing/reconciliation/matching premium_billing/stripe_billing/rules.py premium_billing/cancellations/rules.py premium_billing/reports/rules.py premium_billing/portal/rules.py premium_billing/notifications/rules.py premium_billing/outbound/rules.py premium_billing/collections/rules.py premium_billing/dashboard/rules.py

# The page tests drive the system Chromium: apt-get installs it when missing (as root);
# otherwise one line says what to install and make stops.
browser:
	@bash scripts/ensure-chromium.sh

test: lint browser
	$(BIN)/pytest -n 2 -p no:cacheprovider

# schemathesis, in a venv of its own (var/st-venv), against a server it starts on free
# ports (its own SQLite database, the fake Stripe): every operation, no 5xx; bounded by
# ST_MAX_EXAMPLES per operation and ST_MAX_TIME seconds. It stops all it started.
schemathesis: install
	BIN=$(BIN) PYTHON=$(PYTHON) exec bash scripts/schemathesis.sh

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

bench-aging: install
	$(BIN)/python -m bench.bench_aging --n $(N) --admin-url $(PG_BENCH_URL)
# The email and event senders: SENDERS_N invoices' notices to an SMTP server and their
# invoice.issued events to an HTTP receiver, both on loopback; >= 100/s each.
SENDERS_N ?= 2000
bench-senders: install
	$(BIN)/python -m bench.bench_senders --n $(SENDERS_N) --admin-url $(PG_BENCH_URL)
bench-collections: install
	$(BIN)/python -m bench.bench_collections --n $(N) --admin-url $(PG_BENCH_URL)
bench-dashboard: install
	$(BIN)/python -m bench.bench_dashboard --n $(N) --admin-url $(PG_BENCH_URL) $(if $(KEEP),--keep)
