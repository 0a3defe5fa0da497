"""The webhook edge's metrics (GET /metrics).

- `premium_billing_stripe_posting_latency_seconds{processing}`: from Stripe's event time
  (`created`, whole seconds) to the commit that posted the payment, as the inbox records
  it per event (`stripe_events.posting_latency_ms`, the KPIs' source), counted once the
  posting committed: `inline` (in the webhook request), `deferred` (by a drain, from the
  queue) or `retry` (a failed event posted by the retry job).
- `premium_billing_webhook_events_total{status}`: Stripe webhooks answered, by what became
  of the event (processed, ignored, duplicate, failed, queued).
- `premium_billing_webhook_queue_depth{status}`: events waiting to be posted, `queued` (for
  a drain) and `failed` (for the retry job), and `premium_billing_webhook_dead_events`
  (given up after WEBHOOK_MAX_ATTEMPTS: a person's turn), read from the inbox at each
  scrape (`InboxCollector`): the same whichever process answers the scrape.
- `premium_billing_webhook_queue_oldest_seconds{status}`: how long the oldest waiting event
  of each status has waited (0 when none): a stuck drain shows in `queued` before the
  depth grows; `failed` events wait for their backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from sqlalchemy import func, select, text

from premium_billing.db import Database
from premium_billing.db.types import utcnow
from premium_billing.stripe_billing.models import StripeEvent

log = logging.getLogger(__name__)

PROCESSING = ("inline", "deferred", "retry")
# Seconds: Stripe's `created` has whole seconds; a retry waits minutes to hours.
LATENCY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0, 86400.0)
WAITING = ("queued", "failed")
SCRAPE_TIMEOUT_MS = 2000  # a scrape never waits long on the database (PostgreSQL)

POSTING_LATENCY = Histogram(
    "premium_billing_stripe_posting_latency_seconds",
    "Stripe event time to the commit that posted its payment, by processing "
    "(inline, deferred, retry).",
    ("processing",),
    buckets=LATENCY_BUCKETS,
)
EVENTS = Counter(
    "premium_billing_webhook_events",
    "Stripe webhooks answered, by what became of the event "
    "(processed, ignored, duplicate, failed, queued).",
    ("status",),
)
for _processing in PROCESSING:
    POSTING_LATENCY.labels(_processing)


def posted(processing: str, latency_ms: int | None) -> None:
    """A posting committed `latency_ms` after its Stripe event's time (None: nothing
    posted)."""
    if latency_ms is not None:
        POSTING_LATENCY.labels(processing).observe(latency_ms / 1000)


def posted_many(processing: str, latencies_ms: list[int]) -> None:
    child = POSTING_LATENCY.labels(processing)
    for latency in latencies_ms:
        child.observe(latency / 1000)


def answered(status: str) -> None:
    EVENTS.labels(status).inc()


class InboxCollector:
    """The webhook queue, read from the inbox at scrape time (one grouped query on the
    status index). When the database does not answer, the queue gauges are left out and
    `premium_billing_webhook_queue_up` is 0."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "premium_billing_webhook_queue_up",
            "1 when the webhook queue could be read from the database at this scrape.",
        )
        try:
            rows = self._read()
        except Exception:  # the scrape still answers; /readyz says why
            log.warning("webhook queue not read", extra={"event": "metrics_inbox_failed"})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        counts = {status: count for status, count, _ in rows}
        depth = GaugeMetricFamily(
            "premium_billing_webhook_queue_depth",
            "Stripe events waiting to be posted: queued (for a drain), failed (for a retry).",
            labels=["status"],
        )
        for status in WAITING:
            depth.add_metric([status], counts.get(status, 0))
        yield depth
        yield GaugeMetricFamily(
            "premium_billing_webhook_dead_events",
            "Stripe events given up after WEBHOOK_MAX_ATTEMPTS (requeue them once fixed).",
            value=counts.get("dead", 0),
        )
        oldest = GaugeMetricFamily(
            "premium_billing_webhook_queue_oldest_seconds",
            "Since when the oldest Stripe event waiting to be posted was received, in seconds "
            "(0: none waits), by status.",
            labels=["status"],
        )
        received = {status: first for status, _, first in rows}
        now = utcnow()
        for status in WAITING:
            first = received.get(status)
            oldest.add_metric([status], max(0.0, (now - first).total_seconds()) if first else 0.0)
        yield oldest

    def _read(self) -> list[tuple[str, int, datetime | None]]:
        with self.db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"SET LOCAL statement_timeout = {SCRAPE_TIMEOUT_MS}"))
            rows = conn.execute(
                select(StripeEvent.status, func.count(), func.min(StripeEvent.received_at))
                .where(StripeEvent.status.in_((*WAITING, "dead")))
                .group_by(StripeEvent.status)
            ).all()
        # received_at: a UTC timestamp, read back timezone-aware (db.types.UTCDateTime)
        return [(status, int(count), received) for status, count, received in rows]
