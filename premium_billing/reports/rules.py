"""The rules of the finance reports: aging buckets and the KPI formulas. Pure: standard
library only.

Days past due = as_of − due date (calendar days, civil dates in BILLING_TIMEZONE).
Buckets (upper bound included): ≤ 0 `current` (due today or later), 1–30 `1_30`,
31–60 `31_60`, 61–90 `61_90`, 91 and more `over_90`.

Ratios are `Decimal`s rounded half up to a stated number of places (`RATIO_PLACES` for
rates, `DAYS_PLACES` for DSO, `SECONDS_PLACES` for latency); `None` when the denominator
is zero (no figure, rather than a made-up 0 or infinity).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

CURRENT = "current"
BUCKETS: tuple[str, ...] = (CURRENT, "1_30", "31_60", "61_90", "over_90")
# The last day past due of each bucket but the last (which is open-ended).
BUCKET_LAST_DAY: tuple[int, ...] = (0, 30, 60, 90)

RATIO_PLACES = 4
DAYS_PLACES = 1
SECONDS_PLACES = 3


def bucket_of(days_past_due: int) -> str:
    """The aging bucket of an amount `days_past_due` days past its due date."""
    for bucket, last_day in zip(BUCKETS, BUCKET_LAST_DAY, strict=False):
        if days_past_due <= last_day:
            return bucket
    return BUCKETS[-1]


def days_past_due(as_of: date, due_date: date) -> int:
    """Calendar days from the due date to `as_of` (≤ 0: not yet past due)."""
    return (as_of - due_date).days


@dataclass(frozen=True)
class BucketCutoff:
    """An amount due on or after `earliest_due_date` (None: any date) falls in `bucket`,
    unless an earlier cutoff already took it: the buckets as due-date comparisons, which
    any SQL dialect evaluates the same (and an index on due dates can serve)."""

    bucket: str
    earliest_due_date: date | None


def bucket_cutoffs(as_of: date) -> list[BucketCutoff]:
    """The buckets of `as_of` in order, each with the earliest due date it takes."""
    cutoffs = [
        BucketCutoff(bucket, as_of - timedelta(days=last_day))
        for bucket, last_day in zip(BUCKETS, BUCKET_LAST_DAY, strict=False)
    ]
    cutoffs.append(BucketCutoff(BUCKETS[-1], None))
    return cutoffs


def rounded(numerator: int | Decimal, denominator: int | Decimal, places: int) -> Decimal | None:
    """numerator ÷ denominator rounded half up to `places` decimals; None when ÷ 0."""
    if denominator == 0:
        return None
    quantum = Decimal(1).scaleb(-places)
    return (Decimal(numerator) / Decimal(denominator)).quantize(quantum, rounding=ROUND_HALF_UP)


def ratio(numerator: int, denominator: int) -> Decimal | None:
    """A rate (collection rate, failed payment rate …) to `RATIO_PLACES` decimals."""
    return rounded(numerator, denominator, RATIO_PLACES)


def period_days(start: date, end: date) -> int:
    """Days in the period `start`..`end`, both included."""
    return (end - start).days + 1


def dso(closing_receivables: int, billed: int, days: int) -> Decimal | None:
    """Days sales outstanding: receivables at the period's end ÷ billed in it × its days."""
    return rounded(Decimal(closing_receivables) * days, billed, DAYS_PLACES)


def cei(opening: int, billed: int, closing: int, closing_current: int) -> Decimal | None:
    """Collection effectiveness index: (opening receivables + billed − closing receivables)
    ÷ (opening receivables + billed − closing current receivables)."""
    return ratio(opening + billed - closing, opening + billed - closing_current)


def median_ms_as_seconds(middle: Sequence[int]) -> Decimal | None:
    """The median from the one or two middle values (milliseconds) of a sorted list, in
    seconds to `SECONDS_PLACES` decimals; None for no values."""
    if not middle:
        return None
    return rounded(sum(middle), len(middle) * 1000, SECONDS_PLACES)


def middle_offsets(count: int) -> tuple[int, int]:
    """(offset, how many) of the middle value(s) of `count` sorted values: one when odd,
    two when even, none when empty."""
    if count == 0:
        return 0, 0
    return (count - 1) // 2, 1 if count % 2 else 2
