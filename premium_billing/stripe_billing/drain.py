"""Draining queued Stripe events (WEBHOOK_PROCESSING=deferred) in batches.

Most events at volume are `payment_intent.succeeded` for an invoice named in the metadata,
about a PaymentIntent we have never heard of. A batch of those is posted set-based, in one
transaction with the inbox rows marked processed: the PaymentIntent states, the payments and
their allocations (`stripe_billing.payments.post_succeeded`, the very function the inline
webhook posts a batch of one with, on the posting engine), and each event's posting latency.
The result is what `retry_one` would give for each event in turn (same code, same rule,
same fields), because anything that could make the order matter goes the one-by-one way
instead: other event types, autopay charges, a PaymentIntent already
known (an earlier event, a payment), two events for one PaymentIntent or one invoice in the
batch. Should the batch fail (a racing process posted one of its PaymentIntents: a unique
constraint), it is rolled back and every event takes the one-by-one way.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from premium_billing.actor import Actor, acting_as
from premium_billing.clock import business_date, business_date_of
from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.db.bulk import insert_rows, update_rows
from premium_billing.db.types import utcnow
from premium_billing.payments.models import Payment
from premium_billing.stripe_billing.events import _id, _latency_ms, _lock_timeout, retry_one
from premium_billing.stripe_billing.models import StripeEvent, StripePaymentState
from premium_billing.stripe_billing.payments import Succeeded, post_succeeded
from premium_billing.stripe_billing.rules import parse_id

log = logging.getLogger(__name__)

BATCH = 500
DRAIN_LOCK = 0x5EB400C  # one drainer at a time gathers the biggest batches


@dataclass(frozen=True)
class _Succeeded:
    row_id: int
    attempts: int
    event: dict[str, Any]
    pi_id: str
    charge_id: str | None
    amount: int
    currency: str
    metadata: dict[str, Any]
    customer_id: str | None
    created: int | None  # Stripe's Unix timestamp; received on its business date
    invoice_id: int


def _simple(row_id: int, attempts: int, payload: str) -> _Succeeded | None:
    """The event as a plain succeeded PaymentIntent for an invoice, or None."""
    try:
        event = json.loads(payload)
        if event.get("type") != "payment_intent.succeeded":
            return None
        pi = event["data"]["object"]
        metadata = pi.get("metadata") or {}
        invoice_id = parse_id("invoice", metadata.get("invoice_id"))
        amount = pi.get("amount_received") or pi["amount"]
        if invoice_id is None or metadata.get("autopay_attempt") or not isinstance(amount, int):
            return None
        created = pi.get("created")
        return _Succeeded(
            row_id=row_id,
            attempts=attempts,
            event=event,
            pi_id=str(pi["id"]),
            charge_id=_id(pi.get("latest_charge")),
            amount=amount,
            currency=str(pi["currency"]).upper(),
            metadata=dict(metadata),
            customer_id=_id(pi.get("customer")),
            created=int(created) if created else None,
            invoice_id=invoice_id,
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return None  # the one-by-one way records why it fails


def drain(db: Database, settings: Settings, limit: int = BATCH) -> int:
    """Post up to `limit` queued events, oldest first; returns how many were handled."""
    with db.session() as session:
        _lock_timeout(session, settings)
        if session.get_bind().dialect.name == "postgresql" and not session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": DRAIN_LOCK}
        ):
            return 0  # another process is draining (it loops until the queue is empty)
        stmt = (
            select(StripeEvent.id, StripeEvent.attempts, StripeEvent.payload)
            .where(StripeEvent.status == "queued")
            .order_by(StripeEvent.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)  # another drainer has those
        rows = session.execute(stmt).all()
        if not rows:
            return 0
        simple = [e for e in (_simple(r.id, r.attempts, r.payload) for r in rows) if e]
        done: set[int] = set()
        if simple:
            try:
                with acting_as(Actor(kind="webhook", id=f"batch of {len(simple)}", name="drain")):
                    done = _post_batch(session, settings, simple)
                session.commit()
            except Exception as error:
                session.rollback()
                done = set()
                log.warning(
                    "webhook batch rolled back, posting one by one",
                    extra={"event": "webhook_batch_failed", "error": type(error).__name__},
                )
        else:
            session.rollback()
    others = [r.id for r in rows if r.id not in done]
    return len(done) + sum(
        retry_one(db, settings, row_id, status="queued") != "skipped" for row_id in others
    )


def _post_batch(session: Session, settings: Settings, events: list[_Succeeded]) -> set[int]:
    """Post what can be posted set-based; returns the inbox row ids it handled."""
    pi_ids = [e.pi_id for e in events]
    known = set(
        session.scalars(
            select(StripePaymentState.payment_intent_id).where(
                StripePaymentState.payment_intent_id.in_(pi_ids)
            )
        )
    )
    known.update(
        session.scalars(
            select(Payment.external_id).where(
                Payment.source == "stripe", Payment.external_id.in_(pi_ids)
            )
        )
    )
    chosen: list[_Succeeded] = []
    seen_pi: set[str] = set()
    seen_invoice: set[int] = set()
    for e in events:
        if e.pi_id in known or e.pi_id in seen_pi or e.invoice_id in seen_invoice:
            continue
        seen_pi.add(e.pi_id)
        seen_invoice.add(e.invoice_id)
        chosen.append(e)
    if not chosen:
        return set()
    today = business_date(settings.timezone)
    created_on = {
        e.pi_id: business_date_of(e.created, settings.timezone) if e.created else None
        for e in chosen
    }
    posted = post_succeeded(
        session,
        settings,
        [
            Succeeded(
                payment_intent_id=e.pi_id,
                charge_id=e.charge_id,
                amount=e.amount,
                currency=e.currency,
                metadata=e.metadata,
                received_on=created_on[e.pi_id] or today,
            )
            for e in chosen
        ],
        memo="stripe webhooks",
    )
    payment_ids = [pid for pid, _ in posted]
    now = utcnow()
    insert_rows(
        session,
        StripePaymentState.__table__,
        [
            {
                "payment_intent_id": e.pi_id,
                "charge_id": e.charge_id,
                "succeeded": True,
                "amount": e.amount,
                "currency": e.currency,
                "stripe_metadata": e.metadata,
                "payer_name": None,
                "customer_id": e.customer_id,
                "created_on": created_on[e.pi_id],
                "amount_refunded": 0,
                "payment_id": pid,
            }
            for e, pid in zip(chosen, payment_ids, strict=True)
        ],
    )
    update_rows(
        session,
        StripeEvent.__table__,
        [
            {
                "id": e.row_id,
                "attempts": 1,
                "status": "processed",
                "processed_at": now,
                "next_attempt_at": None,
                "posting_latency_ms": _latency_ms(e.event, now),
                "payment_id": pid,
            }
            for e, pid in zip(chosen, payment_ids, strict=True)
        ],
        add=("attempts",),
        assign=("status", "processed_at", "next_attempt_at", "posting_latency_ms", "payment_id"),
    )
    log.info(
        "stripe events posted",
        extra={"event": "webhooks_posted", "count": len(chosen),
               "unmatched": sum(why is not None for _, why in posted)},
    )  # fmt: skip
    return {e.row_id for e in chosen}


def drain_forever(db: Database, settings: Settings, stop: threading.Event) -> None:
    """A drain process: post a batch; when it was not full, wait WEBHOOK_DRAIN_DELAY_MS (at
    least 50 ms) to gather the next one (bigger batches cost less per event), until `stop`."""
    pause = max(settings.webhook_drain_delay_ms, 50) / 1000
    log.info("webhook drain started", extra={"event": "webhook_drain_started"})
    while not stop.is_set():
        handled = 0
        try:
            handled = drain(db, settings)
        except Exception:  # keep draining; the retry job is the backstop
            log.exception("webhook drain failed")
        if handled < BATCH:
            stop.wait(pause)
