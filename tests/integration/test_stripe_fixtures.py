"""Every Stripe event type we handle, replayed from Stripe's own published fixtures
(tests/fixtures/stripe/) through the signed endpoint, inline and deferred (issue 13, items
6-8): each ends as docs/api.md says (posted, unapplied for reconciliation, ignored, or
stored for retry with its reason), never a 5xx, never lost; `ledger check` passes after
each. Disputes move money only when Stripe does; the amount that moved is the documented
field, 0 when it says 0; `payout.paid` without Stripe waits and shows as pending."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from devtools.fake_stripe import FakeStripe
from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.stripe_billing.models import StripeCustomer, StripePaymentState

from .stripe_fixtures import replay, stripe_object
from .stripe_helpers import (
    fake,  # noqa: F401
    ledger_problems,
    open_invoices,
    stripe_payments,
    stripe_settings,
)

PROCESSING = ["inline", "deferred"]


@pytest.fixture(params=PROCESSING)
def settings(request: Any, database_url: str, fake: FakeStripe) -> Settings:  # noqa: F811
    return stripe_settings(database_url, fake, webhook_processing=request.param)


def _metadata(invoice: dict) -> dict:
    return {"invoice_id": invoice["id"], "invoice_number": invoice["number"]}


def _succeeded_pi(invoice: dict, **changes: Any) -> dict:
    """Stripe's published PaymentIntent, succeeded for the invoice's amount due."""
    values: dict[str, Any] = {
        "amount": invoice["amount_due"],
        "amount_received": invoice["amount_due"],
        "currency": "usd",
        "status": "succeeded",
        "canceled_at": None,
        "last_payment_error": None,
        "next_action": None,
        "processing": None,
        "metadata": _metadata(invoice),
    }
    values.update(changes)
    return stripe_object("payment_intent", **values)


def _books_ok(db: Any) -> None:
    assert ledger_problems(db) == []


def _invoice(api: Any, invoice: dict) -> dict:
    return dict(api.get(f"/invoices/{invoice['id']}").json())


def _payment(db: Any, external_id: str) -> Any:
    return next((p for p in stripe_payments(db) if p.external_id == external_id), None)


def _paid(base: str, api: Any, db: Any, invoice: dict) -> tuple[dict, str]:
    """The invoice paid by a `payment_intent.succeeded` (its charge named): (pi, charge id)."""
    charge_id = stripe_object("charge")["id"]
    pi = _succeeded_pi(invoice, latest_charge=charge_id)
    row = replay(base, db, "payment_intent.succeeded", pi)
    assert (row.status, row.last_error) == ("processed", None)
    assert row.payment_id is not None
    assert _invoice(api, invoice)["status"] == "paid"
    _books_ok(db)
    return pi, charge_id


def _dispute(pi: dict, charge_id: str, **changes: Any) -> dict:
    """Stripe's published dispute (an inquiry: warning_needs_response) of the payment."""
    values: dict[str, Any] = {"amount": pi["amount"], "charge": charge_id,
                              "payment_intent": pi["id"]}  # fmt: skip
    values.update(changes)
    return stripe_object("dispute", **values)


# ----------------------------------------------------------------------------- payments


def test_payment_intents_post_wait_unapplied_or_change_nothing(api, db, settings, live_server):
    base = live_server.base_url
    a, b = open_invoices(api, db, settings, n=2)
    _paid(base, api, db, a)
    # Less received than the invoice asks: the payment waits unapplied for reconciliation.
    short = _succeeded_pi(b, amount_received=b["amount_due"] - 100)
    row = replay(base, db, "payment_intent.succeeded", short)
    assert row.status == "processed"
    payment = _payment(db, short["id"])
    assert (payment.amount, payment.status) == (b["amount_due"] - 100, "unapplied")
    assert payment.match_evidence["unmatched"]
    assert _invoice(api, b)["status"] == "open"
    _books_ok(db)
    # Stripe's published failed PaymentIntent: stored, nothing posted.
    failed = stripe_object(
        "payment_intent",
        metadata=_metadata(b),
        last_payment_error={"type": "card_error", "code": "card_declined",
                            "decline_code": "insufficient_funds"},
    )  # fmt: skip
    row = replay(base, db, "payment_intent.payment_failed", failed)
    assert (row.status, row.payment_id) == ("processed", None)
    assert _payment(db, failed["id"]) is None
    _books_ok(db)


def test_zero_received_is_zero(api, db, settings, live_server):
    """Item 7: `amount_received: 0` and an uncaptured charge (`captured: false,
    amount_captured: 0`, as Stripe publishes it) post no money."""
    base = live_server.base_url
    (invoice,) = open_invoices(api, db, settings)
    nothing = _succeeded_pi(invoice, amount_received=0)
    row = replay(base, db, "payment_intent.succeeded", nothing)
    assert (row.status, row.payment_id) == ("ignored", None)
    # An authorization that expired: Stripe marks the uncaptured charge refunded.
    released = stripe_object(
        "charge",
        amount=invoice["amount_due"],
        amount_refunded=invoice["amount_due"],
        refunded=True,
        payment_intent=stripe_object("payment_intent")["id"],
        metadata=_metadata(invoice),
    )
    assert (released["captured"], released["amount_captured"]) == (False, 0)
    row = replay(base, db, "charge.refunded", released)
    assert (row.status, row.payment_id) == ("ignored", None)
    assert stripe_payments(db) == []
    assert _invoice(api, invoice)["status"] == "open"
    _books_ok(db)


def test_checkout_sessions_paid_post_and_unpaid_are_ignored(api, db, settings, live_server):
    base = live_server.base_url
    a, b, c, d = open_invoices(api, db, settings, n=4)

    def session(invoice: dict, payment_status: str) -> dict:
        return stripe_object(
            "checkout.session",
            amount_subtotal=invoice["amount_due"],
            amount_total=invoice["amount_due"],
            currency="usd",
            client_reference_id=invoice["id"],
            metadata=_metadata(invoice),
            payment_intent=stripe_object("payment_intent")["id"],
            payment_status=payment_status,
            status="complete",
        )

    paid = session(a, "paid")
    row = replay(base, db, "checkout.session.completed", paid)
    assert row.status == "processed" and row.payment_id is not None
    assert _invoice(api, a)["status"] == "paid"
    assert _payment(db, paid["payment_intent"]).amount == a["amount_due"]
    # A delayed method completes unpaid (async_payment_succeeded pays it later);
    # no_payment_required moves no money.
    for invoice, status in ((b, "unpaid"), (c, "no_payment_required")):
        row = replay(base, db, "checkout.session.completed", session(invoice, status))
        assert (row.status, row.payment_id) == ("ignored", None)
        assert _invoice(api, invoice)["status"] == "open"
    # Stripe's published session as it is (amount_total null, unpaid): ignored.
    row = replay(base, db, "checkout.session.completed", stripe_object("checkout.session"))
    assert row.status == "ignored"
    # A delayed method: completed unpaid, then its money arrives (or never does).
    later = session(d, "unpaid")
    assert replay(base, db, "checkout.session.completed", later).status == "ignored"
    failed = replay(base, db, "checkout.session.async_payment_failed", later)
    assert (failed.status, failed.payment_id) == ("processed", None)
    arrived = {**later, "payment_status": "paid"}
    row = replay(base, db, "checkout.session.async_payment_succeeded", arrived)
    assert row.status == "processed" and row.payment_id is not None
    assert _invoice(api, d)["status"] == "paid"
    assert len(stripe_payments(db)) == 2
    _books_ok(db)


def test_charge_refunded_records_what_stripe_refunded(api, db, settings, live_server):
    base = live_server.base_url
    (invoice,) = open_invoices(api, db, settings)
    pi, charge_id = _paid(base, api, db, invoice)
    charge = stripe_object(
        "charge",
        id=charge_id,
        amount=invoice["amount_due"],
        amount_captured=invoice["amount_due"],
        captured=True,
        amount_refunded=300,
        payment_intent=pi["id"],
        metadata=_metadata(invoice),
    )
    row = replay(base, db, "charge.refunded", charge)
    assert row.status == "processed"
    payment = _payment(db, pi["id"])
    assert (payment.amount, payment.amount_refunded) == (invoice["amount_due"], 300)
    assert _invoice(api, invoice)["amount_due"] == 300
    _books_ok(db)


# ----------------------------------------------------------------------------- disputes


def test_an_inquiry_moves_no_money(api, db, settings, live_server):
    """Item 6: Stripe's published dispute is an inquiry (warning_needs_response, case_type
    inquiry): no funds leave, the payment stays applied through its whole life."""
    base = live_server.base_url
    (invoice,) = open_invoices(api, db, settings)
    pi, charge_id = _paid(base, api, db, invoice)
    inquiry = _dispute(pi, charge_id)
    assert inquiry["payment_method_details"]["card"]["case_type"] == "inquiry"
    for event_type, status in (
        ("charge.dispute.created", "warning_needs_response"),
        ("charge.dispute.updated", "warning_under_review"),
        ("charge.dispute.closed", "warning_closed"),
    ):
        row = replay(base, db, event_type, {**inquiry, "status": status})
        assert row.status == "processed", row.last_error
        (payment,) = stripe_payments(db)
        assert (payment.status, payment.amount_reversed) == ("applied", 0)
        assert _invoice(api, invoice)["status"] == "paid"
        _books_ok(db)


def test_a_chargeback_reverses_once_and_a_won_one_is_reinstated(api, db, settings, live_server):
    base = live_server.base_url
    (invoice,) = open_invoices(api, db, settings)
    amount = invoice["amount_due"]
    pi, charge_id = _paid(base, api, db, invoice)
    dispute = _dispute(pi, charge_id, status="needs_response", reason="fraudulent")
    steps = [
        ("charge.dispute.created", "needs_response", "reversed", "open"),
        ("charge.dispute.funds_withdrawn", "needs_response", "reversed", "open"),
        ("charge.dispute.updated", "under_review", "reversed", "open"),
        ("charge.dispute.closed", "won", "reversed", "paid"),
        ("charge.dispute.funds_reinstated", "won", "reversed", "paid"),
    ]
    for event_type, status, payment_status, invoice_status in steps:
        row = replay(base, db, event_type, {**dispute, "status": status})
        assert row.status == "processed", (event_type, row.last_error)
        original = _payment(db, pi["id"])
        assert (original.status, original.amount_reversed) == (payment_status, amount)
        assert _invoice(api, invoice)["status"] == invoice_status, event_type
        _books_ok(db)
    back = _payment(db, dispute["id"])  # reinstated once, however many events say so
    assert (back.amount, back.status) == (amount, "applied")
    assert len(stripe_payments(db)) == 2


def test_an_inquiry_escalated_then_lost_stays_reversed(api, db, settings, live_server):
    base = live_server.base_url
    (invoice,) = open_invoices(api, db, settings)
    pi, charge_id = _paid(base, api, db, invoice)
    dispute = _dispute(pi, charge_id)
    assert replay(base, db, "charge.dispute.created", dispute).status == "processed"
    assert _payment(db, pi["id"]).status == "applied"
    withdrawn = {**dispute, "status": "needs_response"}
    assert replay(base, db, "charge.dispute.funds_withdrawn", withdrawn).status == "processed"
    assert _payment(db, pi["id"]).status == "reversed"
    assert _invoice(api, invoice)["status"] == "open"
    _books_ok(db)
    assert replay(base, db, "charge.dispute.closed", {**dispute, "status": "lost"}).status == (
        "processed"
    )
    assert [p.status for p in stripe_payments(db)] == ["reversed"]
    assert _invoice(api, invoice)["status"] == "open"
    _books_ok(db)


def test_a_dispute_larger_than_its_payment_is_flagged(api, db, settings, live_server):
    base = live_server.base_url
    (invoice,) = open_invoices(api, db, settings)
    pi, charge_id = _paid(base, api, db, invoice)
    larger = _dispute(pi, charge_id, status="needs_response", amount=pi["amount"] + 500)
    row = replay(base, db, "charge.dispute.created", larger)
    assert row.status == "processed"
    payment = _payment(db, pi["id"])
    assert (payment.status, payment.amount_reversed) == ("reversed", pi["amount"])
    _books_ok(db)
    with db.session() as session:
        state = session.scalar(
            select(StripePaymentState).where(StripePaymentState.payment_intent_id == pi["id"])
        )
        assert state.dispute_flag and str(pi["amount"] + 500) in state.dispute_flag
    today = business_date(settings.timezone)
    report = api.get(f"/reports/reconciliation?date={today}").json()
    (flagged,) = report["disputes_flagged"]
    assert (flagged["dispute_id"], flagged["amount"], flagged["payment_id"]) == (
        larger["id"], pi["amount"] + 500, f"pay_{payment.id}",
    )  # fmt: skip
    # Won: what comes back is at most what the reversal took.
    replay(base, db, "charge.dispute.closed", {**larger, "status": "won"})
    assert _payment(db, larger["id"]).amount == pi["amount"]
    _books_ok(db)


def test_a_dispute_of_an_unknown_charge_waits_with_its_reason(api, db, settings, live_server):
    dispute = stripe_object("dispute", status="needs_response")  # ch_… we never saw
    row = replay(live_server.base_url, db, "charge.dispute.created", dispute)
    assert row.status == "failed" and "unknown charge" in row.last_error
    assert row.next_attempt_at is not None


# ----------------------------------------------------------------------------- the rest


def test_setup_intents_save_a_card_or_are_ignored(api, db, settings, live_server):
    base = live_server.base_url
    (invoice,) = open_invoices(api, db, settings)
    holder = int(invoice["policyholder_id"].removeprefix("ph_"))
    with db.session() as session:  # a customer Stripe knows us by (as autopay-setup makes)
        session.add(StripeCustomer(policyholder_id=holder, customer_id="cus_fixture_1"))
        session.commit()
    saved = stripe_object(
        "setup_intent",
        customer="cus_fixture_1",
        payment_method="pm_fixture_1",
        status="succeeded",
        last_setup_error=None,
        next_action=None,
    )
    assert replay(base, db, "setup_intent.succeeded", saved).status == "processed"
    with db.session() as session:
        customer = session.scalar(
            select(StripeCustomer).where(StripeCustomer.customer_id == "cus_fixture_1")
        )
        assert customer.payment_method_id == "pm_fixture_1"
    # Stripe's published one (no customer, not succeeded): nothing to do.
    assert replay(base, db, "setup_intent.succeeded", stripe_object("setup_intent")).status == (
        "ignored"
    )


def test_refund_events_settle_ours_and_ignore_the_dashboards(
    api,
    db,
    settings,
    live_server,
    fake,  # noqa: F811
):
    base = live_server.base_url
    (invoice,) = open_invoices(api, db, settings)
    # A refund made in Stripe's Dashboard (Stripe's published one): charge.refunded has it.
    row = replay(base, db, "refund.updated", stripe_object("refund"))
    assert (row.status, row.payment_id) == ("ignored", None)
    # Ours: a payment made at (the fake) Stripe, refunded by hand, then failed there.
    fake.auto_deliver = False
    session_id = api.post(f"/invoices/{invoice['id']}/checkout").json()["session_id"]
    assert fake.pay(session_id) == 303
    (succeeded,) = [e for e in fake.held_events if e["type"] == "payment_intent.succeeded"]
    pi = succeeded["data"]["object"]
    assert replay(base, db, succeeded["type"], pi).status == "processed"
    payment = _payment(db, pi["id"])
    sent = api.post(f"/payments/pay_{payment.id}/refunds", json={"amount": 700, "reason": "x"})
    assert sent.status_code == 201, sent.text
    (refund,) = api.get("/refunds", params={"payment_id": f"pay_{payment.id}"}).json()["data"]
    assert refund["stripe_refund_id"] and refund["status"] == "pending", refund
    failed = stripe_object(
        "refund",
        id=refund["stripe_refund_id"],
        amount=700,
        charge=pi["latest_charge"],
        payment_intent=pi["id"],
        status="failed",
        failure_reason="expired_or_canceled_card",
    )
    row = replay(base, db, "refund.failed", failed)
    assert row.status == "processed", row.last_error
    again = api.get(f"/refunds/{refund['id']}").json()
    assert (again["status"], again["failure_reason"]) == ("failed", "expired_or_canceled_card")
    _books_ok(db)


def test_a_won_chargeback_ends_the_same_whatever_order_its_events_come_in(
    api, db, settings, live_server
):
    base = live_server.base_url
    orders = [(0, 1, 2, 3, 4), (4, 3, 2, 1, 0), (3, 0, 4, 1, 2), (1, 4, 0, 3, 2)]
    invoices = open_invoices(api, db, settings, n=len(orders))
    finals = set()
    for invoice, order in zip(invoices, orders, strict=True):
        charge_id = stripe_object("charge")["id"]
        pi = _succeeded_pi(invoice, latest_charge=charge_id)
        dispute = _dispute(pi, charge_id, status="needs_response")
        events = [
            ("payment_intent.succeeded", pi),
            ("charge.dispute.created", dispute),
            ("charge.dispute.funds_withdrawn", dispute),
            ("charge.dispute.closed", {**dispute, "status": "won"}),
            ("charge.dispute.funds_reinstated", {**dispute, "status": "won"}),
        ]
        for index in order:
            row = replay(base, db, *events[index])
            assert row.status == "processed", (order, index, row.last_error)
            _books_ok(db)
        original, back = _payment(db, pi["id"]), _payment(db, dispute["id"])
        shown = _invoice(api, invoice)
        finals.add(
            (shown["status"], shown["amount_due"], original.status, original.amount_reversed,
             back.amount, back.status)
        )  # fmt: skip
    assert finals == {("paid", 0, "reversed", invoices[0]["amount_due"],
                       invoices[0]["amount_due"], "applied")}  # fmt: skip


def test_a_payment_an_inquiry_reversed_comes_back_when_it_closes(api, db, settings, live_server):
    """Before this rule an inquiry reversed the payment (as a funds_withdrawn would): its
    warning_closed gives it back."""
    base = live_server.base_url
    (invoice,) = open_invoices(api, db, settings)
    pi, charge_id = _paid(base, api, db, invoice)
    inquiry = _dispute(pi, charge_id)
    replay(base, db, "charge.dispute.funds_withdrawn", inquiry)
    assert _payment(db, pi["id"]).status == "reversed"
    assert _invoice(api, invoice)["status"] == "open"
    row = replay(base, db, "charge.dispute.closed", {**inquiry, "status": "warning_closed"})
    assert row.status == "processed"
    assert _payment(db, inquiry["id"]).amount == pi["amount"]
    assert _invoice(api, invoice)["status"] == "paid"
    _books_ok(db)
