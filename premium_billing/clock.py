"""The business date: civil dates for billing, in the one business time zone, and the
window around it that the dates a person or a client gives us must lie in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol
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


# The calendar the service bills in: every date it acts on lies here, time travel or not,
# so that a term, a lead time or a look-back computed from it is still a date.
CALENDAR_START = date(1900, 1, 1)
CALENDAR_END = date(2999, 12, 31)


def _shift(day: date, days: int) -> date:
    """`day` moved by `days`, kept within the calendar (a huge window is no error)."""
    try:
        moved = day + timedelta(days=days)
    except OverflowError:
        moved = date.max if days > 0 else date.min
    return min(max(moved, CALENDAR_START), CALENDAR_END)


def date_window(today: date, window_days: int, *, ahead: bool) -> tuple[date, date]:
    """The first and last date allowed around the business date `today`: `window_days`
    back; as many ahead when `ahead` (an effective date: a policy sold, changed or cancelled
    ahead), else none (a job's `as_of`, a payment's `received_on`: a day that has come)."""
    if window_days < 0:
        raise ValueError("window_days must not be negative")
    return _shift(today, -window_days), _shift(today, window_days if ahead else 0)


def outside_calendar(day: date) -> str | None:
    """None when the service can bill on `day` (`CALENDAR_START`..`CALENDAR_END`), else why
    not: the one bound that time travel leaves."""
    if CALENDAR_START <= day <= CALENDAR_END:
        return None
    return (
        f"Must be between {CALENDAR_START.isoformat()} and {CALENDAR_END.isoformat()}: "
        "the dates the service bills in."
    )


def outside_window(day: date, today: date, window_days: int, *, ahead: bool) -> str | None:
    """None when `day` lies in the business date's window (`date_window`), else why not,
    in one sentence for a person."""
    earliest, latest = date_window(today, window_days, ahead=ahead)
    if earliest <= day <= latest:
        return None
    if ahead:
        reach = f"within {window_days} days of the business date, {today.isoformat()}"
    else:
        reach = (
            f"not after the business date, {today.isoformat()}, "
            f"nor more than {window_days} days before it"
        )
    return f"Must be between {earliest.isoformat()} and {latest.isoformat()}: {reach}."


class WindowSettings(Protocol):
    """What the guard reads of the settings (`premium_billing.config.Settings`)."""

    @property
    def allow_time_travel(self) -> bool: ...
    @property
    def business_date_window_days(self) -> int: ...
    @property
    def timezone(self) -> ZoneInfo: ...


def window_problem(
    settings: WindowSettings, day: date, *, ahead: bool, now: datetime | None = None
) -> str | None:
    """Why `day` may not be used at the instant `now` (default: now), or None: it lies in
    the business date's window, or ALLOW_TIME_TRAVEL is on and it lies in the calendar."""
    if settings.allow_time_travel:
        return outside_calendar(day)
    today = business_date(settings.timezone, now)
    return outside_window(day, today, settings.business_date_window_days, ahead=ahead)
