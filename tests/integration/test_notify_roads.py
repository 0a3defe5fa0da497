"""The notices and events the real roads publish: an autopay decline (the job's record and
Stripe's webhook of the same attempt: one notice), a Stripe payment and its refund, a
refund marked paid by finance. Counted in the outbox and the event log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from premium_billing.jobs.runner import run_job
from premium_billing.notifications.models import Notification
from premium_billing.outbound.endpoints import create_endpoint
from premium_billing.outbound.models import OutboundEvent
from premium_billing.outbound.rules import EVENT_TYPES

from .stripe_helpers import (
    EFFECTIVE,
    fake,  # noqa: F401
    open_invoices,
    pay_checkout,
    settings,  # noqa: F401
    stripe,  # noqa: F401
    stripe_payments,
)
from .test_autopay import _save_card


@pytest.fixture(autouse=True)
def endpoint(db):
    """An endpoint for every event type (an event no endpoint wants is not stored)."""
    with db.session() as session:
        create_endpoint(session, "http://127.0.0.1:9/events", list(EVENT_TYPES))


def kinds(db) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(Notification.kind)))


def event_types(db) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(select(OutboundEvent.type)))


def test_each_declined_autopay_attempt_is_one_notice_and_one_event(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings, autopay=True)
    _save_card(api, db, stripe, invoice, "4000000000000341")  # every charge declined
    for offset in range(0, 10):
        run_job(db, settings, "autopay", EFFECTIVE + timedelta(days=offset))
    stripe.wait_for_deliveries()  # payment_intent.payment_failed of the same attempts
    assert kinds(db).count("payment_failed") == 4
    assert event_types(db).count("payment.failed") == 4
    with db.session() as session:
        facts = session.scalars(
            select(Notification.facts).where(Notification.kind == "payment_failed")
        ).all()
    assert {f["reason"] for f in facts} == {"generic_decline"}
    assert {f["amount"] for f in facts} == {invoice["amount_due"]}


def test_a_stripe_payment_and_its_refund(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings)
    pay_checkout(api, stripe, invoice["id"])
    (payment,) = stripe_payments(db)
    assert kinds(db) == ["invoice_issued", "payment_receipt"]
    assert event_types(db) == ["invoice.issued", "payment.posted"]
    refund = api.post(f"/payments/pay_{payment.id}/refunds", json={"amount": 1000})
    assert refund.status_code == 201, refund.text
    stripe.wait_for_deliveries()
    (owed,) = api.get("/refunds").json()["data"]
    assert owed["status"] == "succeeded", owed
    assert kinds(db) == ["invoice_issued", "payment_receipt", "refund_sent"]
    assert event_types(db) == ["invoice.issued", "payment.posted", "refund.sent"]


def test_a_refund_marked_paid(api, db, settings):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings)
    paid = api.post(
        "/payments",
        json={"amount": invoice["amount_due"] + 500, "currency": "USD", "method": "check",
              "received_on": EFFECTIVE.isoformat(), "reference": invoice["payment_reference"]},
    )  # fmt: skip
    assert paid.status_code == 201, paid.text
    allocate = api.post(
        f"/payments/{paid.json()['id']}/allocations",
        json={"allocations": [{"invoice_id": invoice["id"], "amount": invoice["amount_due"]}]},
    )
    assert allocate.status_code == 201, allocate.text
    owed = api.post(f"/payments/{paid.json()['id']}/refunds", json={"amount": 500})
    assert owed.status_code == 201, owed.text
    (refund,) = api.get("/refunds").json()["data"]
    assert kinds(db) == ["invoice_issued", "payment_receipt"]
    marked = api.post(
        f"/refunds/{refund['id']}/mark-paid",
        json={"method": "check", "reference": "Check 9"},  # paid today
    )
    assert marked.status_code == 200, marked.text
    assert kinds(db) == ["invoice_issued", "payment_receipt", "refund_sent"]
    assert event_types(db) == ["invoice.issued", "payment.posted", "refund.sent"]
