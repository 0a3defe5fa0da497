"""GET /metrics (issue 12, item 13) over real HTTP, on SQLite and PostgreSQL: who may read it,
requests by route template and status with their latency, job runs and durations by job and
outcome, reconciliation outcomes per run, the webhook queue gauges when the database does
not answer. The counts are of this one process (the live server thread runs in it);
tests/e2e/test_metrics_gunicorn.py adds up several gunicorn workers. The Stripe metrics:
test_metrics_stripe.py."""

from __future__ import annotations

import time
from datetime import date

import pytest
import requests
from prometheus_client.exposition import generate_latest

from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.jobs.models import JobRun
from premium_billing.jobs.runner import JOBS, run_job
from tests.factories import create_policyholder
from tests.integration.metrics_helpers import Scrape, books_balance, parse, scrape
from tests.integration.recon_helpers import csv_file, holder_with_invoices, upload
from tests.integration.test_manual_matching import refused_rows
from webhooks.metrics import InboxCollector

TOKEN = "metrics-scraper-token"
REQUESTS = "premium_billing_http_requests_total"
LATENCY = "premium_billing_http_request_duration_seconds"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, allow_time_travel=True, metrics_token=TOKEN)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_metrics_are_for_the_scraper_token_or_an_admin_key(api, make_key, live_server):
    url = live_server.base_url + "/metrics"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["Content-Type"] == "application/problem+json"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(url, headers=_bearer("not-the-token"), timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": TOKEN}, timeout=10).status_code == 401
    for role in ("billing", "finance", "auditor"):
        refused = requests.get(url, headers=_bearer(make_key(role, role)), timeout=10)
        assert refused.status_code == 403, role
        assert refused.json()["detail"] == f"The {role!r} role may not read the metrics."

    for credential in (TOKEN, api.key):
        response = requests.get(url, headers=_bearer(credential), timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        assert response.headers["Cache-Control"] == "no-store"
        assert REQUESTS in response.text
    openmetrics = requests.get(
        url,
        headers={**_bearer(TOKEN), "Accept": "application/openmetrics-text; version=1.0.0"},
        timeout=10,
    )
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n")
    for accept in ("text/plain; version=1.x", "application/openmetrics-text; version=one"):
        odd = requests.get(url, headers={**_bearer(TOKEN), "Accept": accept}, timeout=10)
        assert odd.status_code == 200, accept  # the plain text format, never a 500
        assert odd.headers["Content-Type"].startswith("text/plain")


def test_requests_by_route_template_and_status_with_their_latency(api, live_server):
    holder = create_policyholder(api, name="Zora Quill", email="zora@example.com")
    base = live_server.base_url
    before = scrape(base, TOKEN)
    started = time.perf_counter()
    for _ in range(2):
        assert api.get(f"/policyholders/{holder['id']}").status_code == 200
    assert api.get("/policyholders/ph_999999").status_code == 404
    assert api.as_key(None).get("/policyholders").status_code == 401
    assert api.post("/policyholders", json={}).status_code == 422
    assert requests.get(base + "/no/such/path/ph_1", timeout=10).status_code == 404
    assert requests.request("BREW", base + "/healthz", timeout=10).status_code == 405
    assert requests.get(base + "/healthz", timeout=10).status_code == 200
    elapsed = time.perf_counter() - started
    after = scrape(base, TOKEN)

    one = "/api/v1/policyholders/<holder_id>"
    counted = {
        ("GET", one, "200"): 2,
        ("GET", one, "404"): 1,
        ("GET", "/api/v1/policyholders", "401"): 1,
        ("POST", "/api/v1/policyholders", "422"): 1,
        ("GET", "unmatched", "404"): 1,
        ("other", "unmatched", "405"): 1,
        ("GET", "/healthz", "200"): 1,
        ("GET", "/metrics", "200"): 1,  # the first scrape; a scrape is counted after it
    }
    for (method, route, status), n in counted.items():
        assert after.since(before, REQUESTS, method=method, route=route, status=status) == n
    grown = after.total(REQUESTS) - before.total(REQUESTS)
    assert grown == sum(counted.values())

    count = after.since(before, f"{LATENCY}_count", method="GET", route=one)
    assert count == 3
    assert after.since(before, f"{LATENCY}_bucket", method="GET", route=one, le="+Inf") == 3
    seconds = after.since(before, f"{LATENCY}_sum", method="GET", route=one)
    assert 0 < seconds < elapsed
    # Route templates only: no id, no name of anyone.
    for secret in (holder["id"], "ph_999999", "ph_1", "Zora", "zora@example.com"):
        assert secret not in after.text


def test_job_runs_and_durations_by_job_and_outcome(api, db, settings, backend, live_server):
    base = live_server.base_url
    before = scrape(base, TOKEN)
    for job in JOBS:  # every job's series from the start: a first failure is a rise from 0
        for outcome in ("succeeded", "failed"):
            assert before.has("premium_billing_job_runs_total", job=job, outcome=outcome)

    started = time.perf_counter()
    response = api.post("/jobs/issue_invoices/runs", json={"as_of": "2026-02-01"})
    assert response.status_code == 201, response.text
    elapsed = time.perf_counter() - started
    with (
        refused_rows(db, backend, "reconciliation_runs"),
        pytest.raises(Exception, match="refused"),
    ):
        run_job(db, settings, "reconcile", date(2026, 2, 1), trigger="scheduler")
    after = scrape(base, TOKEN)

    runs, seconds = "premium_billing_job_runs_total", "premium_billing_job_run_duration_seconds"
    assert after.since(before, runs, job="issue_invoices", outcome="succeeded") == 1
    assert after.since(before, runs, job="issue_invoices", outcome="failed") == 0
    assert after.since(before, runs, job="reconcile", outcome="failed") == 1
    assert after.total(runs) - before.total(runs) == 2
    took = after.since(before, f"{seconds}_sum", job="issue_invoices", outcome="succeeded")
    assert 0 < took < elapsed
    assert after.since(before, f"{seconds}_count", job="reconcile", outcome="failed") == 1
    with db.session() as session:
        assert sorted((r.job, r.status) for r in session.query(JobRun)) == [
            ("issue_invoices", "succeeded"),
            ("reconcile", "failed"),
        ]
    books_balance(db)


def test_reconciliation_outcomes_per_run(api, db, live_server):
    _, [(_, short_num)] = holder_with_invoices(api, db, "Ann Lee", [48200])
    _, [(_, over_num)] = holder_with_invoices(api, db, "Raj Patel", [26000])
    _, [(_, part_num)] = holder_with_invoices(api, db, "Eva Schmidt", [50000])
    upload(
        api,
        csv_file(
            f"2026-02-03,481.50,USD,Ann Lee,{short_num},B-1",  # matched, 0.50 written off
            f"2026-02-03,300.00,USD,Raj Patel,{over_num},B-2",  # matched, 40.00 credit
            f"2026-02-03,200.00,USD,Eva Schmidt,{part_num},B-3",  # partially matched
            "2026-02-04,77.00,USD,Zed Unknown,gift,B-4",  # suspense
        ),
    )
    base = live_server.base_url
    payments = "premium_billing_reconciliation_payments_total"
    last = "premium_billing_reconciliation_last_run_payments"
    before = scrape(base, TOKEN)

    first = api.post("/reconciliation/runs", json={"as_of": "2026-02-10"}).json()
    assert (first["matched"], first["partially_matched"], first["suspense"]) == (2, 1, 1)
    after_first = scrape(base, TOKEN)
    for outcome, n in (("matched", 2), ("partially_matched", 1), ("suspense", 1)):
        assert after_first.since(before, payments, outcome=outcome) == n
        assert after_first.value(last, outcome=outcome) == n
    rules = first["stats"]["rules"]
    assert sum(rules.values()) == 3
    for rule, n in rules.items():
        assert (
            after_first.since(before, "premium_billing_reconciliation_matches_total", rule=rule)
            == n
        )

    second = api.post("/reconciliation/runs", json={"as_of": "2026-02-10"}).json()
    assert (second["examined"], second["matched"], second["suspense"]) == (1, 0, 1)
    after = scrape(base, TOKEN)
    for outcome, n in (("matched", 2), ("partially_matched", 1), ("suspense", 2)):
        assert after.since(before, payments, outcome=outcome) == n  # summed over the runs
    for outcome, n in (("matched", 0), ("partially_matched", 0), ("suspense", 1)):
        assert after.value(last, outcome=outcome) == n  # the last run's own
    runs = "premium_billing_reconciliation_runs_total"
    assert after.since(before, runs, status="succeeded") == 2
    assert after.since(before, runs, status="failed") == 0
    duration = "premium_billing_reconciliation_run_duration_seconds_count"
    assert after.since(before, duration) == 2
    books_balance(db)


def _collected(collector: InboxCollector) -> Scrape:
    return parse(generate_latest(collector).decode())


def test_the_webhook_queue_gauges_say_when_the_database_does_not_answer(db, live_server):
    answering = _collected(InboxCollector(db))
    assert answering.value("premium_billing_webhook_queue_up") == 1
    assert answering.value("premium_billing_webhook_queue_depth", status="queued") == 0

    nowhere = Database("postgresql://postgres@127.0.0.1:1/nowhere")  # nothing listens on 1
    try:
        silent = _collected(InboxCollector(nowhere))
    finally:
        nowhere.dispose()
    assert silent.value("premium_billing_webhook_queue_up") == 0
    assert not silent.has("premium_billing_webhook_queue_depth", status="queued")
    assert scrape(live_server.base_url, TOKEN).value("premium_billing_webhook_queue_up") == 1
