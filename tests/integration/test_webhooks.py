"""POST /webhooks/stripe: signatures, the inbox, duplicates, any order, failures and retries."""

from __future__ import annotations

import itertools
import json
import threading
import time
from datetime import date

import pytest
import requests
from sqlalchemy import text

from premium_billing.jobs.runner import run_job
from premium_billing.stripe_billing.gateway import sign_webhook

from .stripe_helpers import (
    OLD_SECRET,
    WEBHOOK_SECRET,
    fake,  # noqa: F401
    inbox,
    ledger_problems,
    open_invoices,
    settings,  # noqa: F401
    stripe,  # noqa: F401
    stripe_payments,
)

TODAY = date(2026, 3, 10)


def _event(type_: str, obj: dict, event_id: str | None = None) -> dict:
    return {
        "id": event_id or f"evt_test_{time.monotonic_ns()}",
        "object": "event",
        "created": int(time.time()),
        "type": type_,
        "data": {"object": obj},
        "livemode": False,
    }


def _pi(invoice: dict, amount: int | None = None, currency: str = "usd", **extra) -> dict:
    return {
        "id": f"pi_test_{time.monotonic_ns()}",
        "object": "payment_intent",
        "amount": invoice["amount_due"] if amount is None else amount,
        "amount_received": invoice["amount_due"] if amount is None else amount,
        "currency": currency,
        "created": int(time.time()),
        "status": "succeeded",
        "latest_charge": None,
        "metadata": {"invoice_id": invoice["id"], "invoice_number": invoice["number"]},
        **extra,
    }


def _post(url: str, body: bytes, header: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return requests.post(url, data=body, headers=headers, timeout=30)


def test_signatures(api, db, settings, stripe, live_server):  # noqa: F811
    url = live_server.base_url + "/webhooks/stripe"
    (invoice,) = open_invoices(api, db, settings)
    event = _event("payment_intent.succeeded", _pi(invoice))
    body = json.dumps(event, indent=2).encode()
    now = int(time.time())
    refused = {
        "forged": sign_webhook(body, "whsec_someone_else", now),
        "stale": sign_webhook(body, WEBHOOK_SECRET, now - 301),
        "missing": None,
        "malformed": "v1=abc",
    }
    for case, header in refused.items():
        response = _post(url, body, header)
        assert response.status_code == 400, case
        assert response.headers["Content-Type"] == "application/problem+json"
    # The same event re-serialised (compact JSON) no longer matches its signature.
    compact = json.dumps(event, separators=(",", ":")).encode()
    assert _post(url, compact, sign_webhook(body, WEBHOOK_SECRET, now)).status_code == 400
    assert inbox(db) == [] and stripe_payments(db) == []
    # The previous secret (rotation) still verifies; no bearer key is needed.
    response = _post(url, body, sign_webhook(body, OLD_SECRET, now))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "processed"
    # Delivered again (Stripe retries): 200, no effect.
    again = _post(url, body, sign_webhook(body, WEBHOOK_SECRET, int(time.time())))
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert len(inbox(db)) == 1 and len(stripe_payments(db)) == 1
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"


def test_unknown_types_are_stored_and_ignored(api, db, settings, stripe):  # noqa: F811
    delivery = stripe.send_event(_event("customer.created", {"id": "cus_x", "object": "customer"}))
    assert delivery.status == 200
    (row,) = inbox(db)
    assert (row.type, row.status, row.object_id) == ("customer.created", "ignored", "cus_x")


def test_mismatched_payments_go_to_suspense(api, db, settings, stripe):  # noqa: F811
    a, b, c = open_invoices(api, db, settings, n=3)
    cases = [
        _pi(a, amount=a["amount_due"] - 1),  # another amount
        _pi(b, currency="eur"),  # another currency
        {**_pi(c), "metadata": {"invoice_id": "inv_999999"}},  # unknown invoice
        {**_pi(c), "metadata": {}},  # no invoice at all
    ]
    for pi in cases:
        assert stripe.send_event(_event("payment_intent.succeeded", pi)).status == 200
    payments = stripe_payments(db)
    assert len(payments) == 4
    for payment in payments:
        assert (payment.status, payment.policyholder_id) == ("unapplied", None)
        assert payment.amount_unapplied == payment.amount
        assert payment.match_evidence["unmatched"]
    for invoice in (a, b, c):
        assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "open"
    assert api.get("/payments?status=unapplied").json()["data"]
    assert ledger_problems(db) == []


def _scenario(api, fake_stripe, invoice: dict, outcome: str) -> tuple[list[dict], int]:
    """Pay, refund 300, dispute the rest with `outcome`; the events held, not delivered."""
    fake_stripe.auto_deliver = False
    session_id = api.post(f"/invoices/{invoice['id']}/checkout").json()["session_id"]
    assert fake_stripe.pay(session_id) == 303
    pi_id = fake_stripe.get(session_id)["payment_intent"]
    charge = fake_stripe.get(pi_id)["latest_charge"]
    fake_stripe.refund_charge(charge, 300)
    fake_stripe.dispute(charge, amount=invoice["amount_due"] - 300, outcome=outcome)
    wanted = {"payment_intent.succeeded", "charge.refunded", "charge.dispute.created",
              "charge.dispute.closed"}  # fmt: skip
    events = [
        e
        for e in fake_stripe.held_events
        if e["type"] in wanted
        and pi_id in (e["data"]["object"].get("payment_intent"), e["data"]["object"]["id"])
    ]
    assert len(events) == 4
    return events, invoice["amount_due"]


def _final_state(api, db, invoice_id: str, pi_id: str, dispute_id: str) -> tuple:
    inv = api.get(f"/invoices/{invoice_id}").json()
    by_id = {p.external_id: p for p in stripe_payments(db)}
    rows = []
    for external_id in (pi_id, dispute_id):
        p = by_id.get(external_id)
        rows.append(
            None
            if p is None
            else (
                p.amount,
                p.amount_allocated,
                p.amount_refunded,
                p.amount_reversed,
                p.amount_unapplied,
                p.status,
            )  # fmt: skip
        )
    return (inv["amount_paid"], inv["amount_due"], inv["status"], *rows)


@pytest.mark.parametrize("outcome", ["won", "lost"])
def test_every_order_of_events_gives_the_same_state(api, db, settings, stripe, outcome):  # noqa: F811
    orders = list(itertools.permutations(range(4)))
    if outcome == "lost":
        orders = orders[::4]  # 6 orders, each event first at least once
    invoices = open_invoices(api, db, settings, n=len(orders))
    finals = set()
    for invoice, order in zip(invoices, orders, strict=True):
        events, amount = _scenario(api, stripe, invoice, outcome)
        for index in order:
            assert stripe.send_event(events[index]).status == 200
        pi_id = events[0]["data"]["object"]["id"]
        dispute_id = next(e for e in events if e["type"] == "charge.dispute.created")["data"][
            "object"
        ]["id"]
        finals.add(_final_state(api, db, invoice["id"], pi_id, dispute_id))
    assert len(finals) == 1, finals
    (final,) = finals
    disputed = amount - 300
    original = (amount, 0, 300, disputed, 0, "reversed")
    if outcome == "won":
        assert final == (disputed, 300, "partially_paid", original,
                         (disputed, disputed, 0, 0, 0, "applied"))  # fmt: skip
    else:
        assert final == (0, amount, "open", original, None)
    assert ledger_problems(db) == []
    assert all(r.status == "processed" for r in inbox(db))


def test_failed_event_is_retried_then_processed(api, db, settings, stripe):  # noqa: F811
    """A dispute whose charge is not known yet fails; once the charge's event is in, the
    retry job posts it. A broken event goes dead after WEBHOOK_MAX_ATTEMPTS (3)."""
    (invoice,) = open_invoices(api, db, settings)
    pi = _pi(invoice, latest_charge="ch_test_late")
    dispute = {"id": "dp_test_1", "object": "dispute", "amount": pi["amount"],
               "charge": "ch_test_late", "status": "needs_response"}  # fmt: skip
    broken = _event("charge.refunded", {"id": "ch_broken", "object": "charge"})
    assert stripe.send_event(_event("charge.dispute.created", dispute)).status == 200
    assert stripe.send_event(broken).status == 200
    assert [r.status for r in inbox(db)] == ["failed", "failed"]
    assert stripe_payments(db) == []

    assert stripe.send_event(_event("payment_intent.succeeded", pi)).status == 200
    stats = run_job(db, settings, "retry_webhooks", TODAY).stats
    assert stats["processed"] == 1 and stats["failed"] == 1
    by_type = {r.type: r for r in inbox(db)}
    assert by_type["charge.dispute.created"].status == "processed"
    assert by_type["charge.dispute.created"].attempts == 2
    (payment,) = stripe_payments(db)
    assert payment.status == "reversed"
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "open"

    stats = run_job(db, settings, "retry_webhooks", TODAY).stats
    assert stats["dead"] == 1
    dead = {r.type: r for r in inbox(db)}["charge.refunded"]
    assert (dead.status, dead.attempts) == ("dead", 3)
    assert "KeyError" in dead.last_error
    assert run_job(db, settings, "retry_webhooks", TODAY).stats["retried"] == 0
    assert ledger_problems(db) == []


@pytest.mark.postgresql_only
def test_a_locked_invoice_fails_fast_and_heals(api, db, settings, stripe, backend):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings)
    number = int(invoice["id"].removeprefix("inv_"))
    with db.engine.connect() as conn:
        conn.execute(text("SELECT id FROM invoices WHERE id = :i FOR UPDATE"), {"i": number})
        event = _event("payment_intent.succeeded", _pi(invoice))
        started = time.monotonic()
        assert stripe.send_event(event).status == 200
        assert time.monotonic() - started < 5  # the lock timeout, not a hung request
        conn.rollback()
    assert [r.status for r in inbox(db)] == ["failed"]
    run_job(db, settings, "retry_webhooks", TODAY)
    assert [r.status for r in inbox(db)] == ["processed"]
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"


@pytest.mark.postgresql_only
def test_concurrent_duplicate_deliveries_post_once(api, db, settings, stripe, backend):  # noqa: F811
    invoices = open_invoices(api, db, settings, n=3)
    for invoice in invoices:
        event = _event("payment_intent.succeeded", _pi(invoice))
        barrier = threading.Barrier(2)
        results: list[int | None] = []

        def deliver(event=event, barrier=barrier, results=results) -> None:
            barrier.wait()
            results.append(stripe.send_event(event).status)

        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == [200, 200]
    assert len(inbox(db)) == 3
    assert len(stripe_payments(db)) == 3
    assert all(api.get(f"/invoices/{i['id']}").json()["status"] == "paid" for i in invoices)
    assert ledger_problems(db) == []
