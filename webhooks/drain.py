"""The drain: posts queued Stripe events (WEBHOOK_PROCESSING=deferred), in batches.

One loop (`run`), run by a daemon thread in each API process (WEBHOOK_DRAIN_IN_API, woken
by each event the process stores, and every second anyway) or by the
`premium-billing drain-webhooks` process. Several drainers at once are safe: on PostgreSQL
one holds an advisory lock and takes a batch under row locks (`SKIP LOCKED`); the others
find the queue taken. A batch is dispatched set-based where the order cannot matter
(`stripe_billing.events.post_many`: plain succeeded PaymentIntents for an invoice), in one
transaction with the inbox rows marked processed; everything else, and a batch that fails
(a racing process posted one of its PaymentIntents: a unique constraint, rolled back), goes
the one-by-one way (`inbox.retry_one`), which is what the set-based way gives too.
"""

from __future__ import annotations

import json
import logging
import os
import threading

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from premium_billing.actor import Actor, acting_as
from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.db.bulk import update_rows
from premium_billing.db.types import utcnow
from premium_billing.stripe_billing import events
from premium_billing.stripe_billing.models import StripeEvent

from . import metrics
from .inbox import latency_ms, lock_timeout, retry_one

log = logging.getLogger(__name__)

BATCH = 500
DRAIN_LOCK = 0x5EB400C  # one drainer at a time gathers the biggest batches
POLL_SECONDS = 1.0  # a thread drainer looks for what other processes queued this often
MIN_PAUSE_SECONDS = 0.05  # a drain process polls at most this often


def drain(db: Database, settings: Settings, limit: int = BATCH) -> int:
    """Post up to `limit` queued events, oldest first; returns how many were handled."""
    with db.session() as session:
        lock_timeout(session, settings)
        if session.get_bind().dialect.name == "postgresql" and not session.scalar(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": DRAIN_LOCK}
        ):
            return 0  # another process is draining (it loops until the queue is empty)
        stmt = (
            select(StripeEvent.id, StripeEvent.payload)
            .where(StripeEvent.status == "queued")
            .order_by(StripeEvent.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)  # another drainer has those
        rows = session.execute(stmt).all()
        if not rows:
            return 0
        done = _post_plain(session, settings, {r.id: r.payload for r in rows})
    others = [r.id for r in rows if r.id not in done]
    return len(done) + sum(
        retry_one(db, settings, row_id, status="queued") != "skipped" for row_id in others
    )


def _post_plain(session: Session, settings: Settings, payloads: dict[int, str]) -> set[int]:
    """Dispatch set-based what can be, marking those inbox rows processed; commits. The ids
    of the rows handled (none when the batch failed and was rolled back)."""
    parsed = {row_id: _loads(payload) for row_id, payload in payloads.items()}
    plain = [
        e
        for e in (events.plain_succeeded(row_id, event) for row_id, event in parsed.items())
        if e is not None
    ]
    if not plain:
        session.rollback()
        return set()
    try:
        with acting_as(Actor(kind="webhook", id=f"batch of {len(plain)}", name="drain")):
            posted = events.post_many(session, settings, plain)
            now = utcnow()
            latencies = {row_id: latency_ms(parsed[row_id], now) for row_id in posted}
            update_rows(
                session,
                StripeEvent.__table__,
                [
                    {
                        "id": row_id,
                        "attempts": 1,
                        "status": "processed",
                        "processed_at": now,
                        "next_attempt_at": None,
                        "posting_latency_ms": latencies[row_id],
                        "payment_id": payment_id,
                    }
                    for row_id, payment_id in posted.items()
                ],
                add=("attempts",),
                assign=(
                    "status",
                    "processed_at",
                    "next_attempt_at",
                    "posting_latency_ms",
                    "payment_id",
                ),
            )
        session.commit()
        metrics.posted_many("deferred", list(latencies.values()))
        return set(posted)
    except Exception as error:
        session.rollback()
        log.warning(
            "webhook batch rolled back, posting one by one",
            extra={"event": "webhook_batch_failed", "error": type(error).__name__},
        )
        return set()


def _loads(payload: str) -> dict:  # type: ignore[type-arg]
    try:
        event = json.loads(payload)
    except ValueError:
        return {}  # the one-by-one way records why it fails
    return event if isinstance(event, dict) else {}


def run(
    db: Database, settings: Settings, stop: threading.Event, wake: threading.Event | None = None
) -> None:
    """The drain loop, until `stop`: wait to be woken (a thread: `wake`, or every
    POLL_SECONDS) or a pause (a process), gather for WEBHOOK_DRAIN_DELAY_MS (bigger batches
    cost less per event), then drain full batches until one is not full."""
    gather = max(settings.webhook_drain_delay_ms, 0) / 1000
    if wake is None:
        gather = max(gather, MIN_PAUSE_SECONDS)
    while not stop.is_set():
        if wake is not None:
            wake.wait(timeout=POLL_SECONDS)
            wake.clear()
        if stop.wait(gather):
            return
        if wake is not None:
            wake.clear()
        try:
            # Until a batch is not full: then gather again (one tiny batch per event that
            # arrives while draining costs the drain three times as much per event).
            while not stop.is_set() and drain(db, settings) >= BATCH:
                pass
        except Exception:  # keep draining; the retry job is the backstop
            log.exception("webhook drain failed")


def drain_forever(db: Database, settings: Settings, stop: threading.Event) -> None:
    """The `premium-billing drain-webhooks` process."""
    log.info("webhook drain started", extra={"event": "webhook_drain_started"})
    run(db, settings, stop)


class Drainer:
    """The drain thread of one API process."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.pid = os.getpid()
        self.thread = threading.Thread(
            target=run, args=(db, settings, self.stopping, self.wake), name="webhook-drain",
            daemon=True,
        )  # fmt: skip
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=10)


_lock = threading.Lock()
_drainers: dict[int, Drainer] = {}


def notify(db: Database, settings: Settings) -> None:
    """Wake this process's drainer, starting it on first use (after a fork, a new one)."""
    key = id(db)
    with _lock:
        drainer = _drainers.get(key)
        if drainer is None or drainer.pid != os.getpid():
            drainer = _drainers[key] = Drainer(db, settings)
            db.on_dispose.append(drainer.stop)
            db.on_dispose.append(lambda: _drainers.pop(key, None))
    drainer.wake.set()
