"""The aging buckets and KPI formulas (reports.rules): boundary days, the due-date cutoffs
agreeing with the day counts, rounding and the null of a zero denominator."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from premium_billing.reports import rules

DAYS = {
    -400: "current",
    -1: "current",
    0: "current",
    1: "1_30",
    30: "1_30",
    31: "31_60",
    60: "31_60",
    61: "61_90",
    90: "61_90",
    91: "over_90",
    10_000: "over_90",
}


def test_each_boundary_day():
    assert {days: rules.bucket_of(days) for days in DAYS} == DAYS


def _bucket_by_cutoffs(as_of: date, due: date) -> str:
    for cut in rules.bucket_cutoffs(as_of):
        if cut.earliest_due_date is None or due >= cut.earliest_due_date:
            return cut.bucket
    raise AssertionError("the last cutoff takes every date")


@given(
    as_of=st.dates(min_value=date(1901, 1, 1), max_value=date(2998, 12, 31)),
    days=st.integers(min_value=-400, max_value=400),
)
def test_the_due_date_cutoffs_agree_with_the_days_past_due(as_of, days):
    due = as_of - timedelta(days=days)
    assert rules.days_past_due(as_of, due) == days
    assert _bucket_by_cutoffs(as_of, due) == rules.bucket_of(days)


def test_cutoffs_are_in_bucket_order():
    cuts = rules.bucket_cutoffs(date(2026, 3, 31))
    assert [c.bucket for c in cuts] == list(rules.BUCKETS)
    assert [c.earliest_due_date for c in cuts] == [
        date(2026, 3, 31),
        date(2026, 3, 1),
        date(2026, 1, 30),
        date(2025, 12, 31),
        None,
    ]


def test_ratios_round_half_up_and_are_null_without_a_denominator():
    assert rules.ratio(26000, 33000) == Decimal("0.7879")
    assert rules.ratio(1, 8) == Decimal("0.1250")
    assert rules.ratio(1, 20000) == Decimal("0.0001")  # 0.00005 rounds up
    assert rules.ratio(0, 5) == Decimal("0.0000")
    assert rules.ratio(5, 0) is None
    assert rules.dso(13000, 33000, 30) == Decimal("11.8")
    assert rules.dso(1, 0, 30) is None
    assert rules.cei(10000, 33000, 13000, 8000) == Decimal("0.8571")
    assert rules.cei(0, 10000, 10000, 10000) is None


@given(
    opening=st.integers(0, 10**9),
    billed=st.integers(0, 10**9),
    collected_share=st.fractions(0, 1),
    current_share=st.fractions(0, 1),
)
def test_cei_is_at_most_one_when_current_is_part_of_closing(
    opening, billed, collected_share, current_share
):
    """Whatever is collected (≤ opening + billed) and whatever part of the closing
    receivables is current, the index lies in [0, 1]."""
    collected = int((opening + billed) * collected_share)
    closing = opening + billed - collected
    current = int(closing * current_share)
    index = rules.cei(opening, billed, closing, current)
    if opening + billed - current == 0:
        assert index is None
    else:
        assert index is not None and Decimal(0) <= index <= Decimal(1)


def test_period_days_and_the_median():
    assert rules.period_days(date(2026, 4, 1), date(2026, 4, 30)) == 30
    assert rules.period_days(date(2028, 2, 1), date(2028, 2, 29)) == 29
    assert rules.middle_offsets(0) == (0, 0)
    assert rules.middle_offsets(5) == (2, 1)
    assert rules.middle_offsets(6) == (2, 2)
    assert rules.median_ms_as_seconds([]) is None
    assert rules.median_ms_as_seconds([1500]) == Decimal("1.500")
    assert rules.median_ms_as_seconds([1000, 1001]) == Decimal("1.001")  # 1.0005 up
