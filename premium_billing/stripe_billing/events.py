"""Stripe events: the inbox (one row per event id), the handlers, and the retry of failures.

An event is stored and processed in one transaction: the inbox row, the payment, its
allocation, journal and audit rows commit together, so an event is posted once or not at
all. A redelivery finds the row and does nothing. When processing fails, the transaction
rolls back and the event is stored `failed`; `retry_failed` (the `retry_webhooks` job)
tries it again with exponential backoff, and after WEBHOOK_MAX_ATTEMPTS it is `dead`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from premium_billing.actor import Actor, acting_as
from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.db.types import utcnow
from premium_billing.stripe_billing import payments as stripe_payments
from premium_billing.stripe_billing import payouts
from premium_billing.stripe_billing.models import AutopayAttempt, StripeEvent
from premium_billing.stripe_billing.payments import Facts

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=24)


class EventError(Exception):
    """The event cannot be processed now (left `failed` for a retry)."""


@dataclass(frozen=True)
class Handled:
    status: str = "processed"  # or "ignored": stored, nothing to do
    payment_id: int | None = None
    posted: bool = False


@dataclass(frozen=True)
class Outcome:
    status: str  # processed, ignored, duplicate, failed
    payment_id: int | None = None
    posting_latency_ms: int | None = None


Handler = Callable[[Session, Settings, dict[str, Any]], Handled]


# ----------------------------------------------------------------------------- handlers


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return None if value is None else str(value)


def _settle(session: Session, settings: Settings, facts: Facts) -> Handled:
    state = stripe_payments.merge(session, facts, settings.timezone)
    settled = stripe_payments.settle(session, settings, state)
    return Handled(payment_id=settled.payment_id, posted=settled.posted)


def _mark_attempt(session: Session, pi: dict[str, Any], status: str, code: str | None) -> None:
    """An autopay charge's outcome learnt from the event (heals a job that crashed)."""
    key = (pi.get("metadata") or {}).get("autopay_attempt")
    if not key:
        return
    values: dict[str, Any] = {"status": status, "payment_intent_id": pi.get("id")}
    if code:
        values["failure_code"] = code
    done = AutopayAttempt.status.in_(("pending",) if status == "failed" else ("pending", "failed"))
    session.execute(
        update(AutopayAttempt)
        .where(AutopayAttempt.idempotency_key == key, done)
        .values(**values, updated_at=utcnow())
    )


def payment_intent_succeeded(session: Session, settings: Settings, pi: dict[str, Any]) -> Handled:
    _mark_attempt(session, pi, "succeeded", None)
    return _settle(
        session,
        settings,
        Facts(
            payment_intent_id=str(pi["id"]),
            charge_id=_id(pi.get("latest_charge")),
            succeeded=True,
            amount=_int(pi.get("amount_received") or pi["amount"]),
            currency=str(pi["currency"]),
            metadata=pi.get("metadata") or {},
            customer_id=_id(pi.get("customer")),
            created=_int(pi.get("created")),
        ),
    )


def payment_intent_failed(session: Session, settings: Settings, pi: dict[str, Any]) -> Handled:
    error = pi.get("last_payment_error") or {}
    _mark_attempt(session, pi, "failed", error.get("decline_code") or error.get("code"))
    return Handled()


def checkout_paid(session: Session, settings: Settings, cs: dict[str, Any]) -> Handled:
    # Only money that arrived: delayed methods complete `unpaid` and settle later.
    if cs.get("mode") != "payment" or cs.get("payment_status") != "paid":
        return Handled(status="ignored")
    details = cs.get("customer_details") or {}
    metadata = dict(cs.get("metadata") or {})
    if cs.get("client_reference_id") and "invoice_id" not in metadata:
        metadata["invoice_id"] = cs["client_reference_id"]
    return _settle(
        session,
        settings,
        Facts(
            payment_intent_id=str(_id(cs.get("payment_intent")) or cs["id"]),
            succeeded=True,
            amount=_int(cs.get("amount_total")),
            currency=str(cs["currency"]),
            metadata=metadata,
            payer_name=details.get("name"),
            customer_id=_id(cs.get("customer")),
            created=_int(cs.get("created")),
        ),
    )


def checkout_failed(session: Session, settings: Settings, cs: dict[str, Any]) -> Handled:
    log.info("checkout payment failed", extra={"event": "checkout_failed", "session": cs["id"]})
    return Handled()


def charge_refunded(session: Session, settings: Settings, charge: dict[str, Any]) -> Handled:
    billing = charge.get("billing_details") or {}
    return _settle(
        session,
        settings,
        Facts(
            payment_intent_id=str(_id(charge.get("payment_intent")) or charge["id"]),
            charge_id=str(charge["id"]),
            succeeded=bool(charge.get("paid", True)),
            amount=_int(charge.get("amount_captured") or charge["amount"]),
            currency=str(charge["currency"]),
            metadata=charge.get("metadata") or {},
            payer_name=billing.get("name"),
            customer_id=_id(charge.get("customer")),
            created=_int(charge.get("created")),
            amount_refunded=_int(charge.get("amount_refunded")) or 0,
        ),
    )


def charge_dispute(session: Session, settings: Settings, dispute: dict[str, Any]) -> Handled:
    pi_id = _id(dispute.get("payment_intent"))
    charge_id = _id(dispute.get("charge"))
    if pi_id is None and charge_id is not None:
        pi_id = stripe_payments.state_by_charge(session, charge_id)
    if pi_id is None:
        # Not yet known which payment: a retry finds it once the charge's event is in.
        raise EventError(f"dispute {dispute.get('id')} of an unknown charge {charge_id}")
    return _settle(
        session,
        settings,
        Facts(
            payment_intent_id=pi_id,
            charge_id=charge_id,
            dispute_id=str(dispute["id"]),
            dispute_amount=_int(dispute.get("amount")),
            dispute_status=str(dispute.get("status") or "needs_response"),
        ),
    )


def payout_paid(session: Session, settings: Settings, payout: dict[str, Any]) -> Handled:
    """Kept for deposit reconciliation (see `payouts.record_payout`)."""
    transactions = stripe_payments.gateway(settings).payout_balance_transactions(payout["id"])
    payouts.record_payout(
        session,
        payout_id=str(payout["id"]),
        amount=int(payout["amount"]),
        currency=str(payout["currency"]).upper(),
        arrival_date=datetime.fromtimestamp(int(payout["arrival_date"]), UTC).date(),
        balance_transactions=[asdict(t) for t in transactions],
        settings=settings,
    )
    return Handled()


def setup_intent_succeeded(session: Session, settings: Settings, seti: dict[str, Any]) -> Handled:
    known = stripe_payments.save_payment_method(session, seti)
    return Handled(status="processed" if known else "ignored")


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": payment_intent_succeeded,
    "payment_intent.payment_failed": payment_intent_failed,
    "checkout.session.completed": checkout_paid,
    "checkout.session.async_payment_succeeded": checkout_paid,
    "checkout.session.async_payment_failed": checkout_failed,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": charge_dispute,
    "charge.dispute.updated": charge_dispute,
    "charge.dispute.closed": charge_dispute,
    "payout.paid": payout_paid,
    "setup_intent.succeeded": setup_intent_succeeded,
}


def handle(session: Session, settings: Settings, event: dict[str, Any]) -> Handled:
    handler = HANDLERS.get(str(event.get("type")))
    if handler is None:
        return Handled(status="ignored")  # stored for the record, nothing to do
    obj = (event.get("data") or {}).get("object")
    if not isinstance(obj, dict):
        raise EventError("event has no data.object")
    return handler(session, settings, obj)


# ----------------------------------------------------------------------------- inbox


def _created(event: dict[str, Any]) -> datetime:
    try:
        return datetime.fromtimestamp(int(event.get("created") or 0), UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.fromtimestamp(0, UTC)


def _insert(session: Session, values: dict[str, Any]) -> int | None:
    """Insert the inbox row; None when the event id is already there (a redelivery)."""
    make = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        make(StripeEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(StripeEvent.id)
    )
    return session.execute(stmt).scalar()


def _row_values(event: dict[str, Any], payload: bytes | str) -> dict[str, Any]:
    obj = (event.get("data") or {}).get("object")
    raw = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return {
        "event_id": str(event["id"])[:255],
        "type": str(event.get("type") or "")[:100],
        "object_id": _id(obj.get("id"))[:255] if isinstance(obj, dict) and obj.get("id") else None,
        "livemode": bool(event.get("livemode", False)),
        "payload": raw,
        "stripe_created_at": _created(event),
        "received_at": utcnow(),
    }


def _lock_timeout(session: Session, settings: Settings) -> None:
    # A webhook answers fast: waiting long on a locked invoice is a failure to retry later.
    if session.get_bind().dialect.name == "postgresql" and settings.webhook_lock_timeout_ms:
        session.execute(text(f"SET LOCAL lock_timeout = {int(settings.webhook_lock_timeout_ms)}"))


def _latency_ms(event: dict[str, Any], now: datetime) -> int:
    return max(0, int((now - _created(event)).total_seconds() * 1000))


def _backoff(settings: Settings, attempts: int) -> timedelta:
    seconds = settings.webhook_retry_base_seconds * 2 ** max(0, attempts - 1)
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


def receive(
    db: Database, settings: Settings, event: dict[str, Any], payload: bytes | str
) -> Outcome:
    """Store a verified event and process it in the same transaction (see the module doc)."""
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise EventError("event has no id")
    values = _row_values(event, payload)
    with acting_as(Actor(kind="webhook", id=values["event_id"], name=values["type"])):
        with db.session() as session:
            try:
                _lock_timeout(session, settings)
                row_id = _insert(session, {**values, "status": "processed", "attempts": 1})
                if row_id is None:
                    session.rollback()
                    return Outcome("duplicate")
                handled = handle(session, settings, event)
                now = utcnow()
                latency = _latency_ms(event, now) if handled.posted else None
                session.execute(
                    update(StripeEvent)
                    .where(StripeEvent.id == row_id)
                    .values(
                        status=handled.status,
                        processed_at=now,
                        posting_latency_ms=latency,
                        payment_id=handled.payment_id,
                    )
                )
                session.commit()
                return Outcome(handled.status, handled.payment_id, latency)
            except Exception as error:
                session.rollback()
                failure = error
        log.warning(
            "stripe event failed",
            extra={"event": "webhook_failed", "event_id": values["event_id"],
                   "type": values["type"], "error": type(failure).__name__},
        )  # fmt: skip
        with db.session() as session:
            _insert(
                session,
                {
                    **values,
                    "status": "dead" if settings.webhook_max_attempts <= 1 else "failed",
                    "attempts": 1,
                    "last_error": _describe(failure),
                    "next_attempt_at": utcnow() + _backoff(settings, 1),
                },
            )
            session.commit()
    return Outcome("failed")


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


# ----------------------------------------------------------------------------- retries


def enqueue(
    db: Database, settings: Settings, event: dict[str, Any], payload: bytes | str
) -> Outcome:
    """Deferred processing: store a verified event as `queued` (one insert on a plain
    connection, the statement built once) and return; the drain (`services.webhook_drain`)
    or the retry job, for what a dead process left, posts it."""
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise EventError("event has no id")
    values = _row_values(event, payload)
    values.update(status="queued", attempts=0, next_attempt_at=values["received_at"])
    with db.engine.begin() as conn:
        row_id = conn.execute(_enqueue_statement(db.dialect), values).scalar()
    return Outcome("queued" if row_id is not None else "duplicate")


_ENQUEUE: dict[str, Any] = {}


def _enqueue_statement(dialect: str) -> Any:
    stmt = _ENQUEUE.get(dialect)
    if stmt is None:
        table = StripeEvent.__table__
        make = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = _ENQUEUE[dialect] = (
            make(table).on_conflict_do_nothing(index_elements=["event_id"]).returning(table.c.id)
        )
    return stmt


def _due(session: Session, now: datetime, limit: int) -> list[int]:
    return list(
        session.scalars(
            select(StripeEvent.id)
            .where(StripeEvent.status.in_(("failed", "queued")), StripeEvent.next_attempt_at <= now)
            .order_by(StripeEvent.next_attempt_at, StripeEvent.id)
            .limit(limit)
        )
    )


def retry_one(db: Database, settings: Settings, row_id: int, status: str | None = None) -> str:
    """Process one stored event (failed, or queued when deferred): processed/ignored,
    failed (later) or dead. `status` limits it to rows in that status."""
    wanted = (status,) if status else ("failed", "queued")
    with db.session() as session:
        _lock_timeout(session, settings)
        stmt = select(StripeEvent).where(StripeEvent.id == row_id, StripeEvent.status.in_(wanted))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)  # another retrier has it
        row = session.scalar(stmt)
        if row is None:
            return "skipped"
        event_id, event_type, attempts = row.event_id, row.type, row.attempts + 1
        with acting_as(Actor(kind="webhook", id=event_id, name=event_type)):
            try:
                event = json.loads(row.payload)
                handled = handle(session, settings, event)
                now = utcnow()
                session.execute(
                    update(StripeEvent)
                    .where(StripeEvent.id == row_id)
                    .values(
                        status=handled.status,
                        attempts=attempts,
                        processed_at=now,
                        next_attempt_at=None,
                        posting_latency_ms=_latency_ms(event, now) if handled.posted else None,
                        payment_id=handled.payment_id,
                    )
                )
                session.commit()
                return handled.status
            except Exception as error:
                session.rollback()
                failure = error
    dead = attempts >= settings.webhook_max_attempts
    with db.session() as session:
        session.execute(
            update(StripeEvent)
            .where(StripeEvent.id == row_id, StripeEvent.status.in_(wanted))
            .values(
                status="dead" if dead else "failed",
                attempts=attempts,
                last_error=_describe(failure),
                next_attempt_at=None if dead else utcnow() + _backoff(settings, attempts),
            )
        )
        session.commit()
    return "dead" if dead else "failed"


def retry_failed(
    db: Database, settings: Settings, *, now: datetime | None = None, limit: int = 1000
) -> dict[str, int]:
    """Retry every failed event whose time has come (the `retry_webhooks` job)."""
    stats = {"retried": 0, "processed": 0, "ignored": 0, "failed": 0, "dead": 0}
    with db.session() as session:
        due = _due(session, now or utcnow(), limit)
    for row_id in due:
        outcome = retry_one(db, settings, row_id)
        if outcome == "skipped":
            continue
        stats["retried"] += 1
        stats[outcome] += 1
    return stats


def requeue(db: Database, event_id: str) -> bool:
    """Give a dead event another round of retries (after the cause was fixed)."""
    with db.session() as session:
        done = session.execute(
            update(StripeEvent)
            .where(StripeEvent.event_id == event_id, StripeEvent.status == "dead")
            .values(status="failed", attempts=0, next_attempt_at=utcnow())
        ).rowcount
        session.commit()
    return bool(done)
