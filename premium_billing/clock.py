"""The business date: civil dates for billing, in the one business time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def business_date(tz: ZoneInfo, now: datetime | None = None) -> date:
    """The civil date in the business time zone at the UTC instant `now` (default: now)."""
    instant = now if now is not None else datetime.now(UTC)
    if instant.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return instant.astimezone(tz).date()
