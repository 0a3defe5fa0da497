"""The dashboard's pure rules: who may do what, when a login is throttled, the months of a
period, and the geometry of the charts (drawn as SVG by the templates); the aging buckets
are the aging report's (`reports.rules`). Standard library and pure rules only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from premium_billing.reports.rules import BUCKETS

# The API's roles (premium_billing.http.keys.ROLES): the dashboard shows finance's pages.
ROLES = ("admin", "billing", "finance", "auditor")
READERS = frozenset({"admin", "finance", "auditor"})  # the API's GETs of these pages
WRITERS = frozenset({"admin", "finance"})  # the API's POSTs of these pages: never the auditor
REDELIVERERS = frozenset({"admin"})  # POST /events/{id}/redeliver: the admin's only

AGING_BUCKETS = BUCKETS  # the aging report's (reports.rules): one rule for a bucket
AGING_LABELS = {"current": "current", "1_30": "1–30", "31_60": "31–60", "61_90": "61–90",
                "over_90": "over 90"}  # fmt: skip
FUNNEL_STATES = ("active", "past_due", "in_grace", "lapsed")


def may_read(role: str) -> bool:
    """A dashboard user of `role` may read finance's pages."""
    return role in READERS


def may_redeliver(role: str) -> bool:
    """Whether the role may redeliver an outbound event (the API's admin only)."""
    return role in REDELIVERERS


def may_write(role: str) -> bool:
    """A dashboard user of `role` may match, undo and mark refunds paid (the auditor never)."""
    return role in WRITERS


# ----------------------------------------------------------------------------- login


@dataclass(frozen=True)
class Throttle:
    """N failed logins within `lock` lock the user name (or the address) for `lock`."""

    max_failures: int
    lock: timedelta


def locked_until(
    failures: Sequence[datetime], now: datetime, throttle: Throttle
) -> datetime | None:
    """When the lock of a name or address with these failed attempts ends, or None (not
    locked): it is locked while `max_failures` or more fell within the last `lock`, until
    the oldest of the latest `max_failures` is `lock` old."""
    if throttle.max_failures < 1:
        return None
    recent = sorted(f for f in failures if now - throttle.lock < f <= now)
    if len(recent) < throttle.max_failures:
        return None
    return recent[-throttle.max_failures] + throttle.lock


def minutes_left(until: datetime, now: datetime) -> int:
    """Whole minutes until `until`, at least 1 (what the login page says)."""
    seconds = (until - now).total_seconds()
    return max(1, -int(-seconds // 60))


# ----------------------------------------------------------------------------- reports


def month_of(day: date) -> str:
    """`YYYY-MM`."""
    return f"{day.year:04d}-{day.month:02d}"


def months(start: date, end: date) -> list[str]:
    """Every month from `start`'s to `end`'s, in order (`YYYY-MM`); none when end < start."""
    out = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def rate_bp(part: int, whole: int) -> int:
    """`part / whole` in basis points (0..10000), rounded half up; 0 when whole is 0."""
    if whole <= 0:
        return 0
    return (20000 * part + whole) // (2 * whole)


# ----------------------------------------------------------------------------- charts


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^k at least `value` (an axis' top); 1 for 0 or less."""
    if value <= 1:
        return 1
    step = 1
    while True:
        for factor in (1, 2, 5):
            if factor * step >= value:
                return factor * step
        step *= 10


@dataclass(frozen=True)
class Bar:
    x: int
    y: int
    width: int
    height: int
    series: int  # which series (its colour)
    value: int
    label: str  # the category


@dataclass(frozen=True)
class Tick:
    y: int
    value: int


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int  # the plot's left edge (the axis labels are left of it)
    top: int
    bottom: int  # the plot's baseline
    maximum: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    labels: tuple[tuple[int, str], ...]  # (x of the category's centre, its label)


def bar_chart(
    categories: Sequence[str],
    series: Sequence[Sequence[int]],
    *,
    width: int = 640,
    height: int = 240,
    maximum: int | None = None,
    left: int = 64,
) -> BarChart:
    """Grouped vertical bars: one group per category, one bar per series in it, scaled to
    `maximum` (default: a nice ceiling of the largest value); four ticks on the axis.
    Negative values are drawn as 0."""
    top, bottom, right = 12, height - 28, width - 8
    largest = max((v for values in series for v in values), default=0)
    top_value = maximum if maximum is not None else nice_ceiling(largest)
    top_value = max(top_value, 1)
    plot_height = bottom - top
    group = (right - left) / max(len(categories), 1)
    bar_width = max(1, int(group * 0.8 / max(len(series), 1)))
    bars = []
    labels = []
    for c, label in enumerate(categories):
        x0 = left + group * c + group * 0.1
        labels.append((int(left + group * c + group / 2), label))
        for s, values in enumerate(series):
            value = values[c] if c < len(values) else 0
            h = int(plot_height * min(max(value, 0), top_value) / top_value)
            bars.append(
                Bar(
                    x=int(x0 + s * bar_width),
                    y=bottom - h,
                    width=max(1, bar_width - 2),
                    height=h,
                    series=s,
                    value=value,
                    label=label,
                )
            )
    ticks = tuple(Tick(y=bottom - plot_height * i // 4, value=top_value * i // 4) for i in range(5))
    return BarChart(width, height, left, top, bottom, top_value, tuple(bars), ticks,
                    tuple(labels))  # fmt: skip


@dataclass(frozen=True)
class Stage:
    label: str
    value: int
    x: int
    y: int
    width: int
    height: int


def funnel(stages: Sequence[tuple[str, int]], *, width: int = 640, row: int = 40) -> list[Stage]:
    """Centred horizontal bars, widest for the largest count (the delinquency funnel)."""
    largest = max((v for _, v in stages), default=0) or 1
    usable = width - 200
    out = []
    for i, (label, value) in enumerate(stages):
        w = max(2, usable * max(value, 0) // largest)
        out.append(Stage(label, value, 100 + (usable - w) // 2, i * row + 4, w, row - 8))
    return out


# ----------------------------------------------------------------------------- CSV

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str | None) -> str:
    """A free-text cell (a payer's name, a bank reference) safe to open in a spreadsheet: one
    that a spreadsheet would read as a formula gets a leading apostrophe."""
    if value is None:
        return ""
    return "'" + value if value.startswith(FORMULA_STARTS) else value
