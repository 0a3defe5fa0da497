"""Refunds through Stripe (issue 12, item 1), over real HTTP against the fake Stripe and its
signed webhooks, on both backends: a cancellation's refund of a Stripe payment is sent to
Stripe through the adapter (stored idempotency key) and paid out when Stripe's webhook
says so; a failed one is owed again, for finance to pay another way; Stripe unavailable,
the `send_refunds` job sends it with the same key; POST /payments/{id}/refunds on a Stripe
payment calls Stripe."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from premium_billing.jobs.runner import run_job
from premium_billing.stripe_billing.models import StripeRequest

from .settlement_helpers import (
    accounts,
    balances,
    books_ok,
    cancel,
    invoices_of,
    issue,
    policy_on,
    statement,
)
from .stripe_helpers import (
    fake,  # noqa: F401
    inbox,
    pay_checkout,
    settings,  # noqa: F401
    stripe,  # noqa: F401
)


def _paid_through_stripe(api, db, settings, stripe, number: str):  # noqa: F811
    """Annual 1,000.00 from 2026-01-01, paid in full through Stripe Checkout."""
    policy = policy_on(api, "annual", number=number)
    issue(db, settings, "2026-01-01")
    (invoice,) = invoices_of(api, policy["id"])
    _, status = pay_checkout(api, stripe, invoice["id"])
    assert status == 303
    paid = api.get(f"/invoices/{invoice['id']}").json()
    assert paid["status"] == "paid"
    (payment,) = api.get("/payments", params={"policyholder_id": policy["policyholder_id"]}).json()[
        "data"
    ]
    assert payment["source"] == "stripe"
    return policy, invoice, payment


def _stripe_refunds(stripe, payment: dict) -> list[dict]:  # noqa: F811
    return [r for r in stripe.objects("refund") if r["payment_intent"] == payment["external_id"]]


def test_annual_paid_through_stripe_cancelled_pro_rata_refunds_through_stripe(
    api,
    db,
    settings,  # noqa: F811
    stripe,  # noqa: F811
):
    """504.11 is sent to the (fake) Stripe with a stored key; refunds payable is back to 0
    after its webhook; the statement shows the refund."""
    stripe.refunds_pending = True  # paid out when Stripe says so, not before
    policy, invoice, payment = _paid_through_stripe(api, db, settings, stripe, "STR-1")
    holder = policy["policyholder_id"]
    response = cancel(api, policy["id"], "2026-07-01")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["refund_due"], body["balance_due"]) == (50411, 0)
    (refund,) = body["refunds"]
    assert (refund["amount"], refund["channel"], refund["status"]) == (50411, "stripe", "pending")
    stripe.wait_for_deliveries()

    (sent,) = _stripe_refunds(stripe, payment)
    assert (sent["amount"], sent["status"]) == (50411, "pending")
    assert sent["metadata"]["refund_id"] == refund["id"]
    (call,) = stripe.requests_to("/v1/refunds")
    with db.session() as session:
        stored = session.scalar(select(StripeRequest).where(StripeRequest.purpose == "refund"))
        assert stored.idempotency_key == call.idempotency_key
        assert (stored.target, stored.status, stored.result_id) == (
            refund["id"], "succeeded", sent["id"],
        )  # fmt: skip
    listed = api.get(f"/refunds/{refund['id']}").json()
    assert (listed["status"], listed["stripe_refund_id"]) == ("pending", sent["id"])
    assert accounts(api)["refunds_payable"] == -50411
    books_ok(db)

    stripe.settle_refund(sent["id"])  # refund.updated: succeeded
    stripe.wait_for_deliveries()
    done = api.get(f"/refunds/{refund['id']}").json()
    assert (done["status"], done["method"]) == ("succeeded", "stripe")
    assert done["paid_on"] is not None
    book = accounts(api)
    assert book["refunds_payable"] == 0
    assert book["stripe_clearing"] == 100000 - 50411
    account = statement(api, holder)
    assert [
        (line["amount"], line["description"])
        for line in account["lines"]
        if line["kind"] == "refund"
    ] == [(50411, "Refund paid to you (to your card)")]
    assert account["closing_balance"] == 0 and balances(api, holder) == (0, 0)
    assert all(row.status in ("processed", "ignored") for row in inbox(db))
    books_ok(db)


def test_short_rate_refund_through_stripe_settled_by_charge_refunded(
    api,
    db,
    settings,  # noqa: F811
    stripe,  # noqa: F811
):
    """A card refund Stripe makes at once: charge.refunded (and refund.created) settle it."""
    policy, _, payment = _paid_through_stripe(api, db, settings, stripe, "STR-SR")
    body = cancel(api, policy["id"], "2026-07-01", "short_rate").json()
    assert body["refund_due"] == 45370
    stripe.wait_for_deliveries()
    (sent,) = _stripe_refunds(stripe, payment)
    assert (sent["amount"], sent["status"]) == (45370, "succeeded")
    (refund,) = api.get("/refunds").json()["data"]
    assert (refund["status"], refund["stripe_refund_id"]) == ("succeeded", sent["id"])
    # The payment is not refunded twice for the charge.refunded Stripe sent about it.
    after = api.get(f"/payments/{payment['id']}").json()
    assert after["amount_refunded"] == 45370 and len(after["refunds"]) == 1
    assert accounts(api)["refunds_payable"] == 0
    books_ok(db)


def test_failed_stripe_refund_is_owed_again_and_paid_by_transfer(
    api,
    db,
    settings,  # noqa: F811
    stripe,  # noqa: F811
):
    policy, _, payment = _paid_through_stripe(api, db, settings, stripe, "STR-FAIL")
    cancel(api, policy["id"], "2026-07-01")
    stripe.wait_for_deliveries()
    (sent,) = _stripe_refunds(stripe, payment)
    (refund,) = api.get("/refunds").json()["data"]
    assert refund["status"] == "succeeded"
    refused = api.post(f"/refunds/{refund['id']}/mark-paid", json={"method": "check"})
    assert refused.status_code == 409
    stripe.fail_refund(sent["id"])  # refund.updated + refund.failed
    stripe.wait_for_deliveries()
    failed = api.get("/refunds", params={"status": "failed"}).json()["data"]
    assert [r["id"] for r in failed] == [refund["id"]]
    assert failed[0]["failure_reason"] == "expired_or_canceled_card"
    assert accounts(api)["refunds_payable"] == -50411  # owed again
    books_ok(db)
    paid = api.post(
        f"/refunds/{refund['id']}/mark-paid", json={"method": "transfer", "reference": "TRF-9"}
    )
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["channel"]) == ("succeeded", "transfer")
    book = accounts(api)
    assert book["refunds_payable"] == 0
    assert book["cash_bank"] == -50411 and book["stripe_clearing"] == 100000
    books_ok(db)


def test_stripe_unavailable_the_job_sends_the_refund_with_the_same_key(
    api,
    db,
    settings,  # noqa: F811
    stripe,  # noqa: F811
):
    policy, _, payment = _paid_through_stripe(api, db, settings, stripe, "STR-DOWN")
    stripe.fail_next(2, 503)  # both tries of the call (the client retries once)
    body = cancel(api, policy["id"], "2026-07-01").json()
    (refund,) = body["refunds"]
    assert refund["status"] == "pending"
    assert _stripe_refunds(stripe, payment) == []
    keys = {r.idempotency_key for r in stripe.requests_to("/v1/refunds")}
    assert len(keys) == 1
    stats = run_job(db, settings, "send_refunds", date(2026, 7, 1)).stats
    assert stats["sent"] == 1, stats
    stripe.wait_for_deliveries()
    (sent,) = _stripe_refunds(stripe, payment)
    assert {r.idempotency_key for r in stripe.requests_to("/v1/refunds")} == keys
    assert api.get(f"/refunds/{refund['id']}").json()["status"] == "succeeded"
    assert run_job(db, settings, "send_refunds", date(2026, 7, 1)).stats["examined"] == 0
    assert len(_stripe_refunds(stripe, payment)) == 1
    books_ok(db)


def test_a_lost_answer_is_found_not_refunded_twice(api, db, settings, stripe):  # noqa: F811
    """Stripe made the refund but its answer was lost: the retry finds it by its metadata
    (a key Stripe may have forgotten never refunds twice)."""
    policy, _, payment = _paid_through_stripe(api, db, settings, stripe, "STR-LOST")
    stripe.delay_next(2, 6.0)  # slower than the client's 5 s timeout: answers lost
    body = cancel(api, policy["id"], "2026-07-01").json()
    (refund,) = body["refunds"]
    stripe.wait_for_deliveries()
    assert len(_stripe_refunds(stripe, payment)) == 1
    run_job(db, settings, "send_refunds", date(2026, 7, 1))
    stripe.wait_for_deliveries()
    assert len(_stripe_refunds(stripe, payment)) == 1
    listed = api.get(f"/refunds/{refund['id']}").json()
    assert listed["status"] == "succeeded" and listed["stripe_refund_id"]
    books_ok(db)


def test_refund_of_a_stripe_payment_by_hand_calls_stripe(api, db, settings, stripe):  # noqa: F811
    """POST /payments/{id}/refunds on a Stripe payment sends the refund to Stripe; its
    webhook pays it out. The invoice it came from re-opens."""
    _, invoice, payment = _paid_through_stripe(api, db, settings, stripe, "STR-HAND")
    response = api.post(
        f"/payments/{payment['id']}/refunds", json={"amount": 2500, "reason": "Goodwill"}
    )
    assert response.status_code == 201, response.text
    stripe.wait_for_deliveries()
    (sent,) = _stripe_refunds(stripe, payment)
    assert sent["amount"] == 2500
    (refund,) = api.get("/refunds", params={"payment_id": payment["id"]}).json()["data"]
    assert (refund["reason"], refund["channel"], refund["status"], refund["description"]) == (
        "manual", "stripe", "succeeded", "Goodwill",
    )  # fmt: skip
    assert api.get(f"/invoices/{invoice['id']}").json()["amount_due"] == 2500
    assert accounts(api)["refunds_payable"] == 0
    books_ok(db)


def test_reinstatement_after_a_stripe_refund_reopens_the_invoice(
    api,
    db,
    settings,  # noqa: F811
    stripe,  # noqa: F811
):
    policy, invoice, _ = _paid_through_stripe(api, db, settings, stripe, "STR-REIN")
    cancel(api, policy["id"], "2026-07-01")
    stripe.wait_for_deliveries()
    response = api.post(
        f"/policies/{policy['id']}/reinstatements", json={"effective_date": "2026-07-02"}
    )
    assert response.status_code == 201, response.text
    again = api.get(f"/invoices/{invoice['id']}").json()
    assert (again["amount_due"], again["amount_credited"]) == (50411, 0)
    (refund,) = api.get("/refunds").json()["data"]
    assert refund["status"] == "succeeded"  # Stripe paid it: it stays paid
    books_ok(db)
