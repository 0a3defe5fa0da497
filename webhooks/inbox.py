"""The inbox: every verified Stripe event stored once (unique event id), then dispatched.

Inline (WEBHOOK_PROCESSING=inline), an event is stored and dispatched in one transaction:
the inbox row, the payment, its allocation, journal and audit rows commit together, so an
event is posted once or not at all; a redelivery finds the row and does nothing. Deferred,
it is stored `queued` and the drain (`webhooks.drain`) dispatches it. When dispatching
fails, the transaction rolls back and the event is stored `failed`; `retry_failed` (the
`retry_webhooks` job) tries it again with exponential backoff, and after
WEBHOOK_MAX_ATTEMPTS it is `dead`. What an event means is the Stripe feature's
(`stripe_billing.events.handle`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
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
from premium_billing.stripe_billing import events
from premium_billing.stripe_billing.events import EventError
from premium_billing.stripe_billing.models import StripeEvent

from . import metrics

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=24)


@dataclass(frozen=True)
class Outcome:
    status: str  # processed, ignored, duplicate, failed, queued
    payment_id: int | None = None
    posting_latency_ms: int | None = None


def _created(event: dict[str, Any]) -> datetime:
    try:
        return datetime.fromtimestamp(int(event.get("created") or 0), UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.fromtimestamp(0, UTC)


def insert_event(session: Session, values: dict[str, Any]) -> int | None:
    """Insert the inbox row; None when the event id is already there (a redelivery)."""
    make = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        make(StripeEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["event_id"])
        .returning(StripeEvent.id)
    )
    return session.execute(stmt).scalar()


def row_values(event: dict[str, Any], payload: bytes | str) -> dict[str, Any]:
    obj = (event.get("data") or {}).get("object")
    raw = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return {
        "event_id": str(event["id"])[:255],
        "type": str(event.get("type") or "")[:100],
        "object_id": str(obj["id"])[:255] if isinstance(obj, dict) and obj.get("id") else None,
        "livemode": bool(event.get("livemode", False)),
        "payload": raw,
        "stripe_created_at": _created(event),
        "received_at": utcnow(),
    }


def lock_timeout(session: Session, settings: Settings) -> None:
    # A webhook answers fast: waiting long on a locked invoice is a failure to retry later.
    if session.get_bind().dialect.name == "postgresql" and settings.webhook_lock_timeout_ms:
        session.execute(text(f"SET LOCAL lock_timeout = {int(settings.webhook_lock_timeout_ms)}"))


def latency_ms(event: dict[str, Any], now: datetime) -> int:
    return max(0, int((now - _created(event)).total_seconds() * 1000))


def backoff(settings: Settings, attempts: int) -> timedelta:
    seconds = settings.webhook_retry_base_seconds * 2 ** max(0, attempts - 1)
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


def receive(
    db: Database, settings: Settings, event: dict[str, Any], payload: bytes | str
) -> Outcome:
    """Store a verified event and process it in the same transaction (see the module doc)."""
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise EventError("event has no id")
    values = row_values(event, payload)
    with acting_as(Actor(kind="webhook", id=values["event_id"], name=values["type"])):
        with db.session() as session:
            try:
                lock_timeout(session, settings)
                row_id = insert_event(session, {**values, "status": "processed", "attempts": 1})
                if row_id is None:
                    session.rollback()
                    return Outcome("duplicate")
                handled = events.handle(session, settings, event)
                now = utcnow()
                latency = latency_ms(event, now) if handled.posted else None
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
                metrics.posted("inline", latency)
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
            insert_event(
                session,
                {
                    **values,
                    "status": "dead" if settings.webhook_max_attempts <= 1 else "failed",
                    "attempts": 1,
                    "last_error": describe(failure),
                    "next_attempt_at": utcnow() + backoff(settings, 1),
                },
            )
            session.commit()
    return Outcome("failed")


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


# ----------------------------------------------------------------------------- retries


def enqueue(
    db: Database, settings: Settings, event: dict[str, Any], payload: bytes | str
) -> Outcome:
    """Deferred processing: store a verified event as `queued` (one insert on a plain
    connection, the statement built once) and return; the drain (`webhooks.drain`)
    or the retry job, for what a dead process left, posts it."""
    if not isinstance(event.get("id"), str) or not event["id"]:
        raise EventError("event has no id")
    values = row_values(event, payload)
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
        lock_timeout(session, settings)
        stmt = select(StripeEvent).where(StripeEvent.id == row_id, StripeEvent.status.in_(wanted))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)  # another retrier has it
        row = session.scalar(stmt)
        if row is None:
            return "skipped"
        event_id, event_type, attempts = row.event_id, row.type, row.attempts + 1
        processing = "deferred" if row.status == "queued" else "retry"
        with acting_as(Actor(kind="webhook", id=event_id, name=event_type)):
            try:
                event = json.loads(row.payload)
                handled = events.handle(session, settings, event)
                now = utcnow()
                latency = latency_ms(event, now) if handled.posted else None
                session.execute(
                    update(StripeEvent)
                    .where(StripeEvent.id == row_id)
                    .values(
                        status=handled.status,
                        attempts=attempts,
                        processed_at=now,
                        next_attempt_at=None,
                        posting_latency_ms=latency,
                        payment_id=handled.payment_id,
                    )
                )
                session.commit()
                metrics.posted(processing, latency)
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
                last_error=describe(failure),
                next_attempt_at=None if dead else utcnow() + backoff(settings, attempts),
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
