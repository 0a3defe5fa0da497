"""The business date: civil dates for billing, in the one business time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from zoneinfo import ZoneInfo


def business_date(tz: ZoneInfo, now: datetime | None = None) -> date:
    """The civil date in the business time zone at the UTC instant `now` (default: now)."""
    instant = now if now is not None else datetime.now(UTC)
    if instant.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return instant.astimezone(tz).date()


def business_date_of(timestamp: float, tz: tzinfo) -> date:
    """The civil date in the business time zone of a Unix timestamp (e.g. Stripe's
    `created`): a payment made at 23:30 in New York on the 31st was received on the 31st."""
    return datetime.fromtimestamp(timestamp, UTC).astimezone(tz).date()
