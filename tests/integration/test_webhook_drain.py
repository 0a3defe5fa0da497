"""The batched drain (services.webhook_drain) gives what posting each event in turn gives:
the same events, processed inline on one set of invoices and queued then drained on an
equal set, leave equal payments, allocations, invoices and inbox rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date

import pytest
from sqlalchemy import func, select

from devtools.fake_stripe import FakeStripe
from premium_billing.config import Settings
from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.payments.models import Allocation, Payment
from premium_billing.stripe_billing.models import StripeEvent, StripePaymentState
from webhooks import drain as webhook_drain
from webhooks import inbox as webhook_events

from .stripe_helpers import fake, ledger_problems, open_invoices, stripe_settings  # noqa: F401

CREATED = int(time.mktime((2026, 3, 11, 12, 0, 0, 0, 0, 0)))


@pytest.fixture
def settings(database_url: str, fake: FakeStripe) -> Settings:  # noqa: F811
    return stripe_settings(database_url, fake, webhook_processing="deferred")


def _event(tag: str, n: int, pi: str, invoice_id: str, amount: int, **extra) -> dict:
    obj = {
        "id": f"pi_{tag}_{pi}", "object": "payment_intent", "amount": amount,
        "amount_received": amount, "currency": extra.pop("currency", "usd"),
        "status": "succeeded", "created": CREATED, "latest_charge": f"ch_{tag}_{pi}",
        "metadata": {"invoice_id": invoice_id, "invoice_number": "INV-X"},
    }  # fmt: skip
    kind = extra.pop("type", "payment_intent.succeeded")
    return {"id": f"evt_{tag}_{n}", "object": "event", "created": CREATED, "type": kind,
            "data": {"object": obj}}  # fmt: skip


def _scenario(tag: str, inv: list[dict]) -> list[dict]:
    due = [i["amount_due"] for i in inv]
    return [
        _event(tag, 0, "a", inv[0]["id"], due[0]),
        _event(tag, 1, "b", inv[1]["id"], due[1]),
        _event(tag, 2, "c", inv[2]["id"], due[2]),
        _event(tag, 3, "d", inv[0]["id"], due[0]),  # a second payment for a paid invoice
        _event(tag, 4, "e", inv[3]["id"], due[3] - 1),  # not the amount due
        _event(tag, 5, "f", "inv_999999999", 5000),  # unknown invoice
        _event(tag, 6, "c", inv[2]["id"], due[2]),  # another event for PaymentIntent c
        _event(tag, 7, "g", inv[4]["id"], due[4], currency="eur"),  # other currency
        _event(tag, 8, "h", inv[5]["id"], due[5], type="payment_intent.payment_failed"),
        _event(tag, 9, "i", inv[5]["id"], due[5]),
    ]


def _outcome(db, tag: str, invoices: list[dict]) -> list:
    with db.session() as s:
        pays = s.scalars(
            select(Payment).where(Payment.external_id.like(f"pi_{tag}_%")).order_by(
                Payment.external_id)
        ).all()  # fmt: skip
        out = []
        for p in pays:
            allocated = s.scalar(
                select(func.coalesce(func.sum(Allocation.amount), 0)).where(
                    Allocation.payment_id == p.id)
            )  # fmt: skip
            evidence = p.match_evidence or {}
            out.append((p.external_id.split("_")[-1], p.amount, p.currency, p.status,
                        p.policyholder_id is not None, p.match_rule, evidence.get("unmatched"),
                        p.reference, p.received_on, allocated))  # fmt: skip
        events = s.execute(
            select(StripeEvent.event_id, StripeEvent.status, StripeEvent.attempts,
                   StripeEvent.payment_id.is_not(None), StripeEvent.posting_latency_ms.is_not(None))
            .where(StripeEvent.event_id.like(f"evt_{tag}_%")).order_by(StripeEvent.event_id)
        ).all()  # fmt: skip
        states = s.scalar(
            select(func.count()).where(StripePaymentState.payment_intent_id.like(f"pi_{tag}_%"))
        )
    return [out, [(e[0].split("_")[-1], *e[1:]) for e in events], states]


def test_a_drained_batch_equals_posting_each_event_in_turn(api, db, settings):
    inline = open_invoices(api, db, settings, n=6)
    batched = open_invoices(api, db, settings, n=6)
    for event in _scenario("inline", inline):
        webhook_events.receive(db, settings, event, json.dumps(event))
    for event in _scenario("batch", batched):
        assert webhook_events.enqueue(db, settings, event, json.dumps(event)).status == "queued"
    assert webhook_drain.drain(db, settings) == 10
    assert webhook_drain.drain(db, settings) == 0
    expected, got = _outcome(db, "inline", inline), _outcome(db, "batch", batched)
    assert got == expected
    payments, events, states = got
    assert [p[0] for p in payments] == ["a", "b", "c", "d", "e", "f", "g", "i"]
    assert [p[3] for p in payments] == (["applied"] * 3 + ["unapplied"] * 4 + ["applied"])
    assert payments[0][8] == date(2026, 3, 11)
    assert states == 9 - 1  # PaymentIntent c had two events
    for inv_a, inv_b in zip(inline, batched, strict=True):
        a = api.get(f"/invoices/{inv_a['id']}").json()
        b = api.get(f"/invoices/{inv_b['id']}").json()
        assert (a["status"], a["amount_due"]) == (b["status"], b["amount_due"])
    assert ledger_problems(db) == []
    with db.session() as s:  # seven of them were posted set-based, in one entry per kind
        legs = s.execute(
            select(JournalEntry.kind, func.count())
            .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
            .where(JournalEntry.memo == "stripe webhooks")
            .group_by(JournalEntry.kind)
        ).all()
    assert sorted(legs) == [("payment_allocated", 2 * 4), ("payment_received", 2 * 7)]


def test_a_drain_process_posts_what_the_api_queued_and_stops_on_sigterm(
    api, db, settings, database_url
):
    invoices = open_invoices(api, db, settings, n=3)
    env = {**os.environ, "DATABASE_URL": database_url, "WEBHOOK_DRAIN_DELAY_MS": "50"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "premium_billing", "drain-webhooks"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for n, invoice in enumerate(invoices):
            event = _event("proc", n, str(n), invoice["id"], invoice["amount_due"])
            webhook_events.enqueue(db, settings, event, json.dumps(event))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with db.session() as s:
                left = s.scalar(select(func.count()).where(StripeEvent.status == "queued"))
            if left == 0:
                break
            time.sleep(0.05)
        assert left == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    for invoice in invoices:
        assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"
    assert ledger_problems(db) == []
