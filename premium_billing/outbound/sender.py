"""The event sender: claims pending deliveries, POSTs each event to its endpoint signed per
the Standard Webhooks spec (`webhook-id`, `webhook-timestamp`, `webhook-signature`: the
`standardwebhooks` library), logs every attempt, retries with backoff over about 3 days and
disables an endpoint that has failed for OUTBOUND_DISABLE_AFTER_DAYS.

Claimed as the email sender claims (a lease, `SKIP LOCKED`), bounded by SENDER_BATCH and
SENDER_PASS_SECONDS; requests go out from a few threads, so one slow endpoint does not hold
up the others' events. Outcomes are written in one transaction at the end of the pass:
delivery is at least once (a crash before that commit sends the batch again when its lease
ends), and `webhook-id` (`evt_<id>`, the same on every attempt) lets a receiver drop a
repeat, as the spec says it should.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.db.bulk import insert_rows
from premium_billing.db.types import utcnow
from premium_billing.http.ids import PREFIXES
from premium_billing.notifications.sender import PassStats, claim_rows

from .models import DeliveryAttempt, EventDelivery, OutboundEvent, WebhookEndpoint
from .rules import disables, retry_at, succeeded

log = logging.getLogger(__name__)

THREADS = 8
USER_AGENT = "premium-billing-webhooks/1"


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    endpoint_id: int
    attempts: int
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


def event_id(number: int) -> str:
    """The public id of an event, its `webhook-id` on every attempt."""
    return f"{PREFIXES['event']}_{number}"


def body(event: Any) -> str:
    """The JSON sent: {type, timestamp, data} (the Standard Webhooks payload shape)."""
    return json.dumps(
        {
            "id": event_id(event.id),
            "type": event.type,
            "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
            "data": event.data,
        },
        separators=(",", ":"),
        sort_keys=True,
    )


def signed_headers(secret: str, msg_id: str, payload: str, at: datetime) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, payload),
    }


def _claim(db: Database, settings: Settings, now: datetime) -> list[Any]:
    table = EventDelivery.__table__
    with db.session() as session:
        ids = claim_rows(
            session,
            table,
            [
                table.c.status == "pending",
                table.c.next_attempt_at <= now,
                table.c.endpoint_id.in_(
                    select(WebhookEndpoint.id).where(
                        WebhookEndpoint.status == "enabled", WebhookEndpoint.deleted_at.is_(None)
                    )
                ),
            ],
            settings.sender_batch,
            now,
            settings.sender_lease_seconds,
        )
        if not ids:
            session.rollback()
            return []
        rows = session.execute(
            select(
                EventDelivery.id.label("delivery_id"),
                EventDelivery.attempts,
                EventDelivery.endpoint_id,
                WebhookEndpoint.url,
                WebhookEndpoint.secret,
                OutboundEvent.id,
                OutboundEvent.type,
                OutboundEvent.data,
                OutboundEvent.created_at,
            )
            .join(OutboundEvent, OutboundEvent.id == EventDelivery.event_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == EventDelivery.endpoint_id)
            .where(EventDelivery.id.in_(ids))
            .order_by(EventDelivery.id)
        ).all()
        session.commit()
    return list(rows)


_local = threading.local()


def _http() -> requests.Session:
    http = getattr(_local, "session", None)
    if http is None:
        http = _local.session = requests.Session()
    return http


def _post(row: Any, settings: Settings, now: datetime) -> Outcome:
    payload = body(row)
    headers = signed_headers(row.secret, event_id(row.id), payload, utcnow())
    started = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        response = _http().post(
            row.url,
            data=payload.encode(),
            headers=headers,
            timeout=settings.outbound_timeout_seconds,
            allow_redirects=False,
        )
        status_code = response.status_code
        response.close()
        if not succeeded(status_code):
            error = f"HTTP {status_code}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:1000]
    return Outcome(
        delivery_id=row.delivery_id,
        endpoint_id=row.endpoint_id,
        attempts=row.attempts + 1,
        status_code=status_code,
        error=error,
        duration_ms=int((time.perf_counter() - started) * 1000),
        attempted_at=now,
    )


def deliver_pass(
    db: Database,
    settings: Settings,
    *,
    now: datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PassStats:
    """Claim a batch of due deliveries and send them, bounded by SENDER_BATCH and
    SENDER_PASS_SECONDS. `now` (UTC) decides what is due, when a failure is retried and
    when an endpoint is disabled (tests give a later one instead of waiting days)."""
    now = now or utcnow()
    stats = PassStats()
    rows = _claim(db, settings, now)
    stats.claimed = len(rows)
    if not rows:
        return stats
    deadline = clock() + settings.sender_pass_seconds

    def attempt(row: Any) -> Outcome | None:
        return _post(row, settings, now) if clock() <= deadline else None

    with ThreadPoolExecutor(max_workers=min(THREADS, len(rows))) as pool:
        outcomes = list(pool.map(attempt, rows))
    done = [o for o in outcomes if o is not None]
    released = [r.delivery_id for r, o in zip(rows, outcomes, strict=True) if o is None]
    with db.session() as session:
        _record(session, settings, done, now, stats)
        if released:
            session.execute(
                update(EventDelivery)
                .where(EventDelivery.id.in_(released))
                .values(claimed_until=None)
            )
        session.commit()
    stats.released = len(released)
    return stats


def _record(
    session: Session, settings: Settings, done: list[Outcome], now: datetime, stats: PassStats
) -> None:
    """The attempts logged, each delivery's state, each endpoint's failing streak."""
    insert_rows(
        session,
        DeliveryAttempt.__table__,
        [
            {
                "delivery_id": o.delivery_id,
                "attempted_at": o.attempted_at,
                "status_code": o.status_code,
                "error": o.error,
                "duration_ms": o.duration_ms,
            }
            for o in done
        ],
    )
    rows = []
    for o in done:
        ok = o.error is None
        later = None if ok else retry_at(now, o.attempts)
        status = "succeeded" if ok else "pending" if later is not None else "failed"
        stats.sent += ok
        stats.retried += status == "pending"
        stats.failed += status == "failed"
        rows.append(
            {
                "id": o.delivery_id,
                "attempts": o.attempts,
                "status": status,
                "next_attempt_at": later,
                "claimed_until": None,
                "delivered_at": now if ok else None,
            }
        )
    table = EventDelivery.__table__
    columns = ("attempts", "status", "next_attempt_at", "claimed_until", "delivered_at")
    session.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values({**{c: bindparam(f"b_{c}") for c in columns}, "updated_at": utcnow()}),
        [{f"b_{k}": v for k, v in row.items()} for row in rows],
    )
    ok_ids = sorted({o.endpoint_id for o in done if o.error is None})
    failing_ids = sorted({o.endpoint_id for o in done if o.error is not None} - set(ok_ids))
    if ok_ids:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_(ok_ids))
            .values(failing_since=None, updated_at=utcnow())
        )
    for endpoint in session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.id.in_(failing_ids)).with_for_update()
    ):
        endpoint.failing_since = endpoint.failing_since or now
        if endpoint.status == "enabled" and disables(
            endpoint.failing_since, now, settings.outbound_disable_after_days
        ):
            endpoint.status = "disabled"
            endpoint.disabled_at = now
            log.warning(
                "webhook endpoint disabled",
                extra={"event": "webhook_endpoint_disabled", "endpoint": endpoint.id},
            )
