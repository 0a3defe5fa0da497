"""Autopay: a card saved by setup-mode Checkout, charged off-session by the autopay job on
the due date, retried +3, +5 and +7 days after a decline; never charged twice."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from premium_billing.jobs.runner import run_job
from premium_billing.stripe_billing.models import AutopayAttempt, StripeCustomer

from .stripe_helpers import (
    EFFECTIVE,
    fake,  # noqa: F401
    ledger_problems,
    open_invoices,
    settings,  # noqa: F401
    stripe,  # noqa: F401
    stripe_payments,
    stripe_settings,
)

CHARGES = "/v1/payment_intents"


def _save_card(api, db, fake_stripe, invoice: dict, card: str) -> None:
    holder = invoice["policyholder_id"]
    response = api.post(f"/policyholders/{holder}/autopay-setup")
    assert response.status_code == 200, response.text
    assert fake_stripe.get(response.json()["session_id"])["mode"] == "setup"
    assert fake_stripe.pay(response.json()["session_id"], card) == 303
    fake_stripe.wait_for_deliveries()
    with db.session() as session:
        customer = session.scalar(select(StripeCustomer))
    assert customer is not None and customer.payment_method_id.startswith("pm_")


def _attempts(db) -> list[tuple[int, str, str | None]]:
    with db.session() as session:
        rows = session.scalars(select(AutopayAttempt).order_by(AutopayAttempt.attempt))
        return [(a.attempt, a.status, a.failure_code) for a in rows]


def test_autopay_charges_on_the_due_date_once(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings, autopay=True)
    _save_card(api, db, stripe, invoice, "4242424242424242")
    day_before = run_job(db, settings, "autopay", EFFECTIVE - timedelta(days=1)).stats
    assert day_before["charged"] == 0
    stats = run_job(db, settings, "autopay", EFFECTIVE).stats
    assert (stats["charged"], stats["succeeded"]) == (1, 1)
    stripe.wait_for_deliveries()
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"
    assert run_job(db, settings, "autopay", EFFECTIVE).stats["charged"] == 0
    assert len(stripe.requests_to(CHARGES)) == 1
    (payment,) = stripe_payments(db)  # the job and the webhook posted it once
    assert payment.status == "applied"
    assert _attempts(db) == [(0, "succeeded", None)]
    assert ledger_problems(db) == []


def test_declines_are_retried_on_the_retry_days(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings, autopay=True)
    _save_card(api, db, stripe, invoice, "4000000000000341")  # saved; every charge declined
    charged = {}
    for offset in range(0, 10):
        stats = run_job(db, settings, "autopay", EFFECTIVE + timedelta(days=offset)).stats
        charged[offset] = stats["charged"]
    assert [d for d, n in charged.items() if n] == [0, 3, 5, 7]
    assert _attempts(db) == [(n, "failed", "generic_decline") for n in range(4)]
    assert len(stripe.requests_to(CHARGES)) == 4
    assert stripe_payments(db) == []
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "open"


def test_a_lost_response_is_healed_by_the_webhook(api, db, database_url, stripe):  # noqa: F811
    """Stripe charged, but our side never saw the answer (timeout, as if we crashed before
    the commit): the webhook posts the payment; the next run resumes with the same key."""
    (invoice,) = open_invoices(api, db, stripe_settings(database_url, stripe), autopay=True)
    _save_card(api, db, stripe, invoice, "4242424242424242")
    impatient = stripe_settings(
        database_url, stripe, stripe_max_network_retries=0, stripe_timeout_seconds=0.5
    )
    stripe.delay_next(1, 1.5)
    stats = run_job(db, impatient, "autopay", EFFECTIVE).stats
    assert (stats["charged"], stats["unavailable"]) == (1, 1)
    deadline = time.monotonic() + 10  # the fake answers (and sends its events) 1.5 s late
    while time.monotonic() < deadline and not any(
        d.event_type == "payment_intent.succeeded" for d in stripe.deliveries
    ):
        time.sleep(0.05)
    stripe.wait_for_deliveries()
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"
    assert _attempts(db) == [(0, "succeeded", None)]  # learnt from the webhook
    assert run_job(db, impatient, "autopay", EFFECTIVE).stats["charged"] == 0
    assert len(stripe.objects("payment_intent")) == 1
    assert len(stripe_payments(db)) == 1
    assert ledger_problems(db) == []


def test_a_5xx_is_retried_with_the_same_key(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings, autopay=True)
    _save_card(api, db, stripe, invoice, "4242424242424242")
    stripe.fail_next(2, status=503)  # the client's one retry fails too
    assert run_job(db, settings, "autopay", EFFECTIVE).stats["unavailable"] == 1
    assert _attempts(db) == [(0, "pending", None)]
    stripe.fail_next(1, status=500)  # resumed: the client's retry gets through
    assert run_job(db, settings, "autopay", EFFECTIVE).stats["succeeded"] == 1
    calls = stripe.requests_to(CHARGES)
    assert len(calls) == 4 and len({c.idempotency_key for c in calls}) == 1
    assert len(stripe.objects("payment_intent")) == 1
    stripe.wait_for_deliveries()
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"
