"""GET /metrics for the Stripe road (issue 12, item 13), on SQLite and PostgreSQL, the fake
Stripe delivering signed webhooks over real HTTP: the posting latency (Stripe's event time to
the commit) of each posted event exactly as the inbox records it, inline, deferred (a drain)
and retried; webhooks by what became of them; the queue depth, failed and dead events, read
from the inbox at each scrape."""

from __future__ import annotations

import time
from typing import Any

import pytest

from devtools.fake_stripe import FakeStripe
from premium_billing.config import Settings
from premium_billing.jobs.runner import run_job
from webhooks.drain import drain

from .metrics_helpers import Scrape, books_balance, scrape
from .stripe_helpers import (
    EFFECTIVE,
    fake,  # noqa: F401
    inbox,
    open_invoices,
    pay_checkout,
    stripe,  # noqa: F401
    stripe_payments,
    stripe_settings,
)
from .test_manual_matching import refused_rows

LATENCY = "premium_billing_stripe_posting_latency_seconds"
EVENTS = "premium_billing_webhook_events_total"
DEPTH = "premium_billing_webhook_queue_depth"
OLDEST = "premium_billing_webhook_queue_oldest_seconds"


@pytest.fixture
def settings(database_url: str, fake: FakeStripe, request: pytest.FixtureRequest) -> Settings:  # noqa: F811
    """Inline processing; `deferred` (indirect parameter): stored, and posted by a drain that
    the test runs (none in the API process)."""
    processing = getattr(request, "param", "inline")
    return stripe_settings(
        database_url, fake, webhook_processing=processing, webhook_drain_in_api=False
    )


def _event(type_: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_metrics_{time.monotonic_ns()}",
        "object": "event",
        "created": int(time.time()),
        "type": type_,
        "data": {"object": obj},
        "livemode": False,
    }


def _paid(invoice: dict[str, Any]) -> dict[str, Any]:
    return _event(
        "payment_intent.succeeded",
        {
            "id": f"pi_metrics_{time.monotonic_ns()}",
            "object": "payment_intent",
            "amount": invoice["amount_due"],
            "amount_received": invoice["amount_due"],
            "currency": "usd",
            "created": int(time.time()),
            "status": "succeeded",
            "latest_charge": None,
            "metadata": {"invoice_id": invoice["id"], "invoice_number": invoice["number"]},
        },
    )


BROKEN = {"id": "ch_broken", "object": "charge"}  # a charge.refunded no retry can post


def _posted_seconds(db: Any) -> list[float]:
    """The posting latency the inbox recorded for each event that posted a payment."""
    return sorted(
        r.posting_latency_ms / 1000 for r in inbox(db) if r.posting_latency_ms is not None
    )


def _latency(after: Scrape, before: Scrape, processing: str) -> tuple[float, float]:
    return (
        after.since(before, f"{LATENCY}_count", processing=processing),
        after.since(before, f"{LATENCY}_sum", processing=processing),
    )


def test_inline_and_retried_postings_and_the_failed_and_dead_events(
    api,
    db,
    settings,
    stripe,  # noqa: F811
    live_server,
    backend,
):
    paid_by_card, paid_later = open_invoices(api, db, settings, n=2)
    base, key = live_server.base_url, api.key
    before = scrape(base, key)

    pay_checkout(api, stripe, paid_by_card["id"])  # Checkout: the fake's events, inline
    (inline_seconds,) = _posted_seconds(db)
    with refused_rows(db, backend, "payments"):  # the database refuses the payment: failed
        assert stripe.send_event(_paid(paid_later)).status == 200
    assert stripe.send_event(_event("charge.refunded", BROKEN)).status == 200
    failed = scrape(base, key)
    assert failed.value(DEPTH, status="failed") == 2
    assert failed.value(DEPTH, status="queued") == 0
    assert 0 <= failed.value(OLDEST, status="failed") < 60
    assert failed.value(OLDEST, status="queued") == 0
    assert failed.since(before, EVENTS, status="failed") == 2
    assert failed.since(before, EVENTS, status="processed") >= 1
    assert _latency(failed, before, "inline") == (1, pytest.approx(inline_seconds))

    run_job(db, settings, "retry_webhooks", EFFECTIVE)  # posts the payment; BROKEN fails again
    assert len(stripe_payments(db)) == 2
    run_job(db, settings, "retry_webhooks", EFFECTIVE)  # BROKEN: its third attempt, dead
    after = scrape(base, key)
    assert after.value(DEPTH, status="failed") == 0
    assert after.value("premium_billing_webhook_dead_events") == 1
    assert after.value(OLDEST, status="failed") == 0
    retried_seconds = sum(_posted_seconds(db)) - inline_seconds
    assert _latency(after, before, "retry") == (1, pytest.approx(retried_seconds))
    assert _latency(after, before, "inline") == (1, pytest.approx(inline_seconds))
    assert _latency(after, before, "deferred") == (0, 0)
    assert api.get(f"/invoices/{paid_later['id']}").json()["status"] == "paid"
    books_balance(db)


@pytest.mark.parametrize("settings", ["deferred"], indirect=True)
def test_the_queue_depth_and_the_drains_posting_latency(api, db, settings, stripe, live_server):  # noqa: F811
    invoices = open_invoices(api, db, settings, n=3)
    base, key = live_server.base_url, api.key
    before = scrape(base, key)
    for invoice in invoices:
        assert stripe.send_event(_paid(invoice)).status == 200
    assert stripe.send_event(_event("charge.refunded", BROKEN)).status == 200
    queued = scrape(base, key)
    assert queued.value(DEPTH, status="queued") == 4
    assert queued.value(DEPTH, status="failed") == 0
    assert 0 <= queued.value(OLDEST, status="queued") < 60
    assert queued.since(before, EVENTS, status="queued") == 4
    assert queued.value("premium_billing_webhook_queue_up") == 1

    while drain(db, settings):  # the drain process's step: set-based, then one by one
        pass
    after = scrape(base, key)
    assert after.value(DEPTH, status="queued") == 0
    assert after.value(DEPTH, status="failed") == 1  # BROKEN, for the retry job
    seconds = _posted_seconds(db)
    assert len(seconds) == 3
    assert _latency(after, before, "deferred") == (3, pytest.approx(sum(seconds)))
    assert _latency(after, before, "inline") == (0, 0)
    bucket = after.since(before, f"{LATENCY}_bucket", processing="deferred", le="60.0")
    assert bucket == 3  # each waited seconds, not minutes
    assert all(
        i["status"] == "paid" for i in (api.get(f"/invoices/{i['id']}").json() for i in invoices)
    )
    books_balance(db)
