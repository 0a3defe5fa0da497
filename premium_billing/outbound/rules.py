"""Outbound event rules (pure): the event types, which delinquency change is which event,
when a failed delivery is retried (over about 3 days), when an endpoint is disabled, and
what an endpoint's URL may be."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

EVENT_TYPES = (
    "invoice.issued",
    "payment.posted",
    "payment.failed",
    "policy.past_due",
    "policy.in_grace",
    "policy.lapsed",
    "policy.reinstated",
    "refund.sent",
)
ENDPOINT_STATUSES = ("enabled", "disabled")
DELIVERY_STATUSES = ("pending", "succeeded", "failed")

# db.hooks.DELINQUENCY_CHANGED's to_state → the event it sends (back to `active` sends none).
STATE_EVENTS = {
    "past_due": "policy.past_due",
    "in_grace": "policy.in_grace",
    "lapsed": "policy.lapsed",
    "reinstated": "policy.reinstated",
}

# The wait after each failed attempt: 10 retries over 71.6 hours (about 3 days), then the
# delivery is failed (it can still be redelivered by hand).
RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=14),
    timedelta(hours=16),
)


def retry_at(now: datetime, attempts: int) -> datetime | None:
    """When a delivery that failed its `attempts`-th attempt is tried again; None: never
    (its retries are spent)."""
    if attempts < 1 or attempts > len(RETRY_SCHEDULE):
        return None
    return now + RETRY_SCHEDULE[attempts - 1]


def succeeded(status_code: int | None) -> bool:
    """A 2xx answer is a delivery; anything else (or none) is a failure."""
    return status_code is not None and 200 <= status_code < 300


def disables(failing_since: datetime | None, now: datetime, after_days: int) -> bool:
    """True when an endpoint failing since `failing_since` (no success since) is disabled."""
    return failing_since is not None and now - failing_since >= timedelta(days=after_days)


def url_problem(url: str) -> str | None:
    """Why `url` cannot be an endpoint (None: it can): http(s), a host, no credentials."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "Not a valid URL."
    if parts.scheme not in ("http", "https"):
        return "Must be an http or https URL."
    if not parts.hostname:
        return "Must name a host."
    if parts.username or parts.password:
        return "Must not carry credentials."
    if port == 0:
        return "Not a valid port."
    return None


def event_types_problem(types: list[str]) -> str | None:
    """Why `types` cannot be an endpoint's subscriptions (None: they can)."""
    if not types:
        return "Name at least one event type."
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        return f"Unknown event types: {', '.join(unknown)}; one of {', '.join(EVENT_TYPES)}."
    return None
