"""WEBHOOK_PROCESSING=deferred: the webhook answers after one insert; a drain thread of the
API process posts the event; what a dead process left queued, the retry job posts."""

from __future__ import annotations

import json
import time
from datetime import date

import pytest

from devtools.fake_stripe import FakeStripe
from premium_billing.config import Settings
from premium_billing.jobs.runner import run_job
from webhooks import inbox as webhook_events

from .stripe_fixtures import deliver
from .stripe_helpers import (
    fake,  # noqa: F401
    inbox,
    ledger_problems,
    open_invoices,
    stripe_payments,
    stripe_settings,
)

TODAY = date(2026, 3, 10)


@pytest.fixture
def settings(database_url: str, fake: FakeStripe) -> Settings:  # noqa: F811
    return stripe_settings(database_url, fake, webhook_processing="deferred")


def _paid_event(invoice: dict, n: int) -> dict:
    pi = {
        "id": f"pi_deferred_{n}",
        "object": "payment_intent",
        "amount": invoice["amount_due"],
        "amount_received": invoice["amount_due"],
        "currency": "usd",
        "status": "succeeded",
        "created": int(time.time()),
        "latest_charge": None,
        "metadata": {"invoice_id": invoice["id"], "invoice_number": invoice["number"]},
    }
    return {
        "id": f"evt_deferred_{n}",
        "object": "event",
        "created": int(time.time()),
        "type": "payment_intent.succeeded",
        "data": {"object": pi},
        "livemode": False,
    }


def wait_for(predicate, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def post_signed(live_server, event: dict) -> dict:  # type: ignore[no-untyped-def]
    return deliver(live_server.base_url, event)


def test_the_webhook_answers_queued_and_the_drain_posts_it(api, db, settings, live_server):
    invoices = open_invoices(api, db, settings, n=3)
    for n, invoice in enumerate(invoices):
        assert post_signed(live_server, _paid_event(invoice, n))["status"] == "queued"
    assert post_signed(live_server, _paid_event(invoices[0], 0))["status"] == "duplicate"
    wait_for(lambda: all(r.status == "processed" for r in inbox(db)) and len(inbox(db)) == 3)
    for invoice in invoices:
        assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"
    assert len(stripe_payments(db)) == 3
    assert all(r.posting_latency_ms is not None and r.attempts == 1 for r in inbox(db))
    assert ledger_problems(db) == []


def test_queued_events_a_dead_process_left_are_posted_by_the_retry_job(api, db, settings):
    (invoice,) = open_invoices(api, db, settings)
    # stored as the webhook would, but no drain thread ever ran (the process died)
    event = _paid_event(invoice, 9)
    outcome = webhook_events.enqueue(db, settings, event, json.dumps(event).encode())
    assert outcome.status == "queued"
    assert [r.status for r in inbox(db)] == ["queued"]
    stats = run_job(db, settings, "retry_webhooks", TODAY).stats
    assert stats["processed"] == 1
    assert [r.status for r in inbox(db)] == ["processed"]
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"
