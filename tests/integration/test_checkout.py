"""Pay online: Checkout for an invoice, paid on the fake Stripe, posted by its webhook."""

from __future__ import annotations

from sqlalchemy import select

from premium_billing.stripe_billing.models import StripeEvent

from .stripe_helpers import (
    fake,  # noqa: F401
    inbox,
    ledger_problems,
    open_invoices,
    pay_checkout,
    settings,  # noqa: F401
    stripe,  # noqa: F401
    stripe_payments,
)


def test_checkout_pays_the_invoice_through_the_webhook(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings)
    response = api.post(f"/invoices/{invoice['id']}/checkout")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["checkout_url"].startswith(stripe.base_url + "/checkout/")
    # Asked again: the same session (the amount did not change).
    assert api.post(f"/invoices/{invoice['id']}/checkout").json() == body
    created = stripe.objects("checkout.session")
    assert len(created) == 1
    assert created[0]["client_reference_id"] == invoice["id"]
    assert created[0]["amount_total"] == invoice["amount_due"]
    assert created[0]["metadata"]["invoice_id"] == invoice["id"]

    assert stripe.pay(body["session_id"]) == 303
    stripe.wait_for_deliveries()
    assert {d.status for d in stripe.deliveries} == {200}

    paid = api.get(f"/invoices/{invoice['id']}").json()
    assert (paid["status"], paid["amount_due"]) == ("paid", 0)
    (payment,) = stripe_payments(db)
    pi = stripe.objects("payment_intent")[0]
    assert payment.external_id == pi["id"]
    assert (payment.status, payment.match_rule) == ("applied", "stripe_metadata")
    out = api.get(f"/payments/pay_{payment.id}").json()
    assert out["allocations"] == [{"invoice_id": invoice["id"], "amount": invoice["amount_due"]}]
    rows = inbox(db)
    assert sorted(r.type for r in rows) == [
        "checkout.session.completed",
        "payment_intent.succeeded",
    ]
    assert all(r.status == "processed" for r in rows)
    posted = [r for r in rows if r.posting_latency_ms is not None]
    assert len(posted) == 1 and posted[0].payment_id == payment.id
    assert 0 <= posted[0].posting_latency_ms < 60_000
    assert ledger_problems(db) == []

    # A paid invoice cannot be paid again.
    again = api.post(f"/invoices/{invoice['id']}/checkout")
    assert again.status_code == 409
    assert again.headers["Content-Type"] == "application/problem+json"


def test_checkout_refused_for_void_and_unknown_invoices(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings)
    assert api.post(f"/invoices/{invoice['id']}/void", json={"reason": "x"}).status_code == 200
    assert api.post(f"/invoices/{invoice['id']}/checkout").status_code == 409
    assert api.post("/invoices/inv_999999/checkout").status_code == 404
    assert api.as_key(None).post(f"/invoices/{invoice['id']}/checkout").status_code == 401
    assert stripe.requests_to("/v1/checkout/sessions") == []


def test_checkout_retries_a_stripe_failure_with_the_same_key(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings)
    stripe.fail_next(2, status=500)  # the client's own retry fails too: 503 to the caller
    assert api.post(f"/invoices/{invoice['id']}/checkout").status_code == 503
    stripe.fail_next(1, status=500)  # the client's retry gets through
    assert api.post(f"/invoices/{invoice['id']}/checkout").status_code == 200
    calls = stripe.requests_to("/v1/checkout/sessions")
    assert len(calls) == 4
    assert len({c.idempotency_key for c in calls}) == 1  # stored once, reused on each retry
    assert len(stripe.objects("checkout.session")) == 1


def test_declined_card_posts_nothing(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings)
    _, status = pay_checkout(api, stripe, invoice["id"], card="4000000000000002")
    assert status == 402
    assert stripe_payments(db) == []
    with db.session() as session:
        types = session.scalars(select(StripeEvent.type)).all()
    assert types == ["payment_intent.payment_failed"]
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "open"
