"""Proration by days: endorsements (mid-term changes) and cancellation (pro rata, short rate).

The grids are hand-computed: amount × days / term days, rounded half up once.
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from premium_billing.errors import DomainError, OutsideTerm
from premium_billing.policies.rules.proration import (
    CancellationResult,
    EndorsementProration,
    cancellation,
    days_remaining,
    endorsement,
    pro_rata_factor,
    term_days,
)

START = date(2026, 1, 1)
END = date(2027, 1, 1)


# --- days -------------------------------------------------------------------------------------


def test_term_days() -> None:
    assert term_days(START, END) == 365
    assert term_days(date(2028, 1, 1), date(2029, 1, 1)) == 366
    assert term_days(date(2026, 2, 1), date(2026, 3, 1)) == 28


@pytest.mark.parametrize("end", [START, START - timedelta(days=1)])
def test_term_days_refuses_empty_terms(end: date) -> None:
    with pytest.raises(DomainError):
        term_days(START, end)


def test_days_remaining() -> None:
    assert days_remaining(START, END, date(2026, 7, 1)) == 184
    assert days_remaining(START, END, START) == 365
    assert days_remaining(START, END, date(2026, 12, 31)) == 1


@pytest.mark.parametrize("on", [date(2025, 12, 31), END, date(2027, 6, 1)])
def test_days_remaining_outside_the_term(on: date) -> None:
    with pytest.raises(OutsideTerm) as info:
        days_remaining(START, END, on)
    assert info.value.field == "effective_date"


def test_pro_rata_factor() -> None:
    assert pro_rata_factor(START, END, date(2026, 7, 1)) == Fraction(184, 365)
    assert pro_rata_factor(START, END, START) == 1
    assert pro_rata_factor(date(2028, 1, 1), date(2029, 1, 1), date(2028, 7, 2)) == Fraction(1, 2)
    with pytest.raises(OutsideTerm):
        pro_rata_factor(START, END, END)


# --- endorsements --------------------------------------------------------------------------------


def test_endorsement_worked_example() -> None:
    # Annual 1,000.00 from 2026-01-01, endorsed to 1,200.00 effective 2026-07-01:
    # 20000 × 184 / 365 = 10082.19… → 100.82 more
    assert endorsement(100000, 120000, START, END, date(2026, 7, 1)) == EndorsementProration(
        delta_amount=10082, days_remaining=184, term_days=365
    )


@pytest.mark.parametrize(
    ("start", "end", "effective", "old", "new", "remaining", "days", "delta"),
    [
        # mid-year increase, 365-day term
        (START, END, date(2026, 7, 1), 100000, 120000, 184, 365, 10082),
        # leap-year term: 30000 × 306 / 366 = 25081.97 → 25082
        (date(2028, 1, 1), date(2029, 1, 1), date(2028, 3, 1), 120000, 150000, 306, 366, 25082),
        # decrease: −12000 × 181 / 365 = −5950.68 → −5951
        (date(2026, 3, 15), date(2027, 3, 15), date(2026, 9, 15), 60000, 48000, 181, 365, -5951),
        # on the start date the whole difference applies
        (START, END, START, 100000, 112345, 365, 365, 12345),
        # on the last day of cover: 36500 × 1 / 365 = 100
        (START, END, date(2026, 12, 31), 100000, 136500, 1, 365, 100),
        # exact halves round away from zero: ±1 × 14 / 28 = ±0.5 → ±1, 73 × 14 / 28 = 36.5 → 37
        (date(2026, 2, 1), date(2026, 3, 1), date(2026, 2, 15), 1000, 1001, 14, 28, 1),
        (date(2026, 2, 1), date(2026, 3, 1), date(2026, 2, 15), 1001, 1000, 14, 28, -1),
        (date(2026, 2, 1), date(2026, 3, 1), date(2026, 2, 15), 0, 73, 14, 28, 37),
        # six-month term anchored on the 31st (181 days): 15000 × 91 / 181 = 7541.44 → 7541
        (date(2026, 1, 31), date(2026, 7, 31), date(2026, 5, 1), 50000, 65000, 91, 181, 7541),
        # pet removed the day before expiry: −65000 × 1 / 181 = −359.12 → −359
        (date(2026, 1, 31), date(2026, 7, 31), date(2026, 7, 30), 65000, 0, 1, 181, -359),
        # no change, no delta
        (START, END, date(2026, 4, 10), 50000, 50000, 266, 365, 0),
    ],
)
def test_endorsement_grid(
    start: date,
    end: date,
    effective: date,
    old: int,
    new: int,
    remaining: int,
    days: int,
    delta: int,
) -> None:
    result = endorsement(old, new, start, end, effective)
    assert result.days_remaining == remaining
    assert result.term_days == days
    assert result.delta_amount == delta


@pytest.mark.parametrize("effective", [date(2025, 12, 31), END])
def test_endorsement_outside_the_term(effective: date) -> None:
    with pytest.raises(OutsideTerm) as info:
        endorsement(100000, 120000, START, END, effective)
    assert info.value.field == "effective_date"


# --- cancellation --------------------------------------------------------------------------------


def test_cancellation_worked_example_pro_rata() -> None:
    # Paid in full, cancelled 2026-07-01: 181 of 365 days earned.
    result = cancellation(100000, 100000, START, END, date(2026, 7, 1), "pro_rata")
    assert result == CancellationResult(
        earned_premium=49589, unearned_premium=50411, penalty=0, refund_due=50411, balance_due=0
    )


def test_cancellation_worked_example_short_rate() -> None:
    # 10% of the unearned 50411 is kept: 5041.1 → 5041.
    result = cancellation(100000, 100000, START, END, date(2026, 7, 1), "short_rate")
    assert result == CancellationResult(
        earned_premium=54630, unearned_premium=45370, penalty=5041, refund_due=45370, balance_due=0
    )


LEAP_START, LEAP_END = date(2028, 1, 1), date(2029, 1, 1)
SIX_START, SIX_END = date(2026, 1, 31), date(2026, 7, 31)
FEB_START, FEB_END = date(2026, 2, 1), date(2026, 3, 1)
QUARTER = Fraction(1, 4)
TENTH = Fraction(1, 10)


@pytest.mark.parametrize(
    (
        "premium",
        "paid",
        "start",
        "end",
        "effective",
        "method",
        "rate",
        "earned",
        "unearned",
        "penalty",
        "refund",
        "balance",
    ),
    [
        # monthly payer, three installments paid (8337 + 2 × 8333), cancelled 2026-04-01:
        # 100000 × 90 / 365 = 24657.53 → 24658 earned, 655 still owed
        (100000, 24003, START, END, date(2026, 4, 1), "pro_rata", TENTH,
         24658, 75342, 0, 0, 655),
        # short rate: 10% of 75342 = 7534.2 → 7534
        (100000, 24003, START, END, date(2026, 4, 1), "short_rate", TENTH,
         32192, 67808, 7534, 0, 8189),
        # cancelled on the start date (flat cancel)
        (100000, 100000, START, END, START, "pro_rata", TENTH, 0, 100000, 0, 100000, 0),
        (100000, 100000, START, END, START, "short_rate", TENTH,
         10000, 90000, 10000, 90000, 0),
        # cancelled on the expiration date: all earned, no penalty
        (100000, 100000, START, END, END, "pro_rata", TENTH, 100000, 0, 0, 0, 0),
        (100000, 100000, START, END, END, "short_rate", TENTH, 100000, 0, 0, 0, 0),
        (100000, 150000, START, END, END, "pro_rata", TENTH, 100000, 0, 0, 50000, 0),
        # leap-year term, nothing paid: 73200 × 60 / 366 = 12000 exactly
        (73200, 0, LEAP_START, LEAP_END, date(2028, 3, 1), "pro_rata", TENTH,
         12000, 61200, 0, 0, 12000),
        # a 25% short-rate penalty: 61200 / 4 = 15300
        (73200, 0, LEAP_START, LEAP_END, date(2028, 3, 1), "short_rate", QUARTER,
         27300, 45900, 15300, 0, 27300),
        # halves round up: 73 × 14 / 28 = 36.5 → 37; penalty 36 / 10 = 3.6 → 4
        (73, 73, FEB_START, FEB_END, date(2026, 2, 15), "pro_rata", TENTH, 37, 36, 0, 36, 0),
        (73, 73, FEB_START, FEB_END, date(2026, 2, 15), "short_rate", TENTH, 41, 32, 4, 32, 0),
        # six-month term on the 31st (181 days), first monthly installment paid (8335),
        # cancelled 2026-03-15 after 43 days: 50000 × 43 / 181 = 11878.45 → 11878
        (50000, 8335, SIX_START, SIX_END, date(2026, 3, 15), "pro_rata", TENTH,
         11878, 38122, 0, 0, 3543),
        # short rate: 38122 / 10 = 3812.2 → 3812
        (50000, 8335, SIX_START, SIX_END, date(2026, 3, 15), "short_rate", TENTH,
         15690, 34310, 3812, 0, 7355),
        # a zero penalty makes short rate equal to pro rata
        (100000, 100000, START, END, date(2026, 7, 1), "short_rate", Fraction(0),
         49589, 50411, 0, 50411, 0),
    ],
)  # fmt: skip
def test_cancellation_grid(
    premium: int,
    paid: int,
    start: date,
    end: date,
    effective: date,
    method: str,
    rate: Fraction,
    earned: int,
    unearned: int,
    penalty: int,
    refund: int,
    balance: int,
) -> None:
    result = cancellation(premium, paid, start, end, effective, method, rate)
    assert result == CancellationResult(earned, unearned, penalty, refund, balance)


@pytest.mark.parametrize("effective", [date(2025, 12, 31), date(2027, 1, 2)])
def test_cancellation_outside_the_term(effective: date) -> None:
    with pytest.raises(OutsideTerm) as info:
        cancellation(100000, 0, START, END, effective, "pro_rata")
    assert info.value.field == "effective_date"


def test_cancellation_unknown_method() -> None:
    with pytest.raises(DomainError) as info:
        cancellation(100000, 0, START, END, date(2026, 7, 1), "flat")
    assert info.value.field == "method"


@pytest.mark.parametrize("rate", [Fraction(-1, 10), Fraction(11, 10)])
def test_cancellation_refuses_a_penalty_outside_0_to_1(rate: Fraction) -> None:
    with pytest.raises(DomainError) as info:
        cancellation(100000, 0, START, END, date(2026, 7, 1), "short_rate", rate)
    assert info.value.field == "short_rate_penalty"


def test_results_are_frozen() -> None:
    result = cancellation(100000, 0, START, END, date(2026, 7, 1), "pro_rata")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.refund_due = 1  # type: ignore[misc]


# --- properties ---------------------------------------------------------------------------

starts = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
lengths = st.integers(min_value=1, max_value=800)
premiums = st.integers(min_value=0, max_value=10**10)
methods = st.sampled_from(["pro_rata", "short_rate"])
rates = st.fractions(min_value=0, max_value=1, max_denominator=1000)


@given(start=starts, length=lengths, data=st.data())
def test_days_remaining_and_elapsed_make_the_term(
    start: date, length: int, data: st.DataObject
) -> None:
    end = start + timedelta(days=length)
    offset = data.draw(st.integers(min_value=0, max_value=length - 1))
    on = start + timedelta(days=offset)
    assert days_remaining(start, end, on) == length - offset
    assert 0 < pro_rata_factor(start, end, on) <= 1


@given(
    start=starts,
    length=lengths,
    old=premiums,
    new=premiums,
    data=st.data(),
)
def test_endorsement_delta_is_the_rounded_share_of_the_change(
    start: date, length: int, old: int, new: int, data: st.DataObject
) -> None:
    end = start + timedelta(days=length)
    effective = start + timedelta(days=data.draw(st.integers(min_value=0, max_value=length - 1)))
    result = endorsement(old, new, start, end, effective)
    change = new - old
    assert abs(result.delta_amount) <= abs(change)
    assert result.delta_amount * change >= 0  # same sign (or zero)
    exact_times_days = change * result.days_remaining
    assert 2 * abs(result.delta_amount * result.term_days - exact_times_days) <= result.term_days


@given(
    start=starts,
    length=lengths,
    premium=premiums,
    paid=premiums,
    method=methods,
    rate=rates,
    data=st.data(),
)
def test_cancellation_stays_within_the_premium_and_balances(
    start: date,
    length: int,
    premium: int,
    paid: int,
    method: str,
    rate: Fraction,
    data: st.DataObject,
) -> None:
    end = start + timedelta(days=length)
    effective = start + timedelta(days=data.draw(st.integers(min_value=0, max_value=length)))
    result = cancellation(premium, paid, start, end, effective, method, rate)
    assert 0 <= result.earned_premium <= premium
    assert 0 <= result.unearned_premium <= premium
    assert result.earned_premium + result.unearned_premium == premium
    assert result.penalty >= 0
    if method == "pro_rata":
        assert result.penalty == 0
    if paid >= result.earned_premium:
        assert result.refund_due + result.earned_premium == paid
        assert result.balance_due == 0
    else:
        assert result.balance_due + paid == result.earned_premium
        assert result.refund_due == 0
    pro_rata = cancellation(premium, paid, start, end, effective, "pro_rata")
    assert result.earned_premium >= pro_rata.earned_premium
    if effective == end:
        assert result.earned_premium == premium


@given(
    start=starts,
    length=lengths,
    premium=premiums,
    method=methods,
    rate=rates,
    data=st.data(),
)
def test_earned_premium_never_decreases_with_a_later_cancellation(
    start: date,
    length: int,
    premium: int,
    method: str,
    rate: Fraction,
    data: st.DataObject,
) -> None:
    end = start + timedelta(days=length)
    first = data.draw(st.integers(min_value=0, max_value=length))
    second = data.draw(st.integers(min_value=first, max_value=length))
    earlier = cancellation(premium, 0, start, end, start + timedelta(days=first), method, rate)
    later = cancellation(premium, 0, start, end, start + timedelta(days=second), method, rate)
    assert earlier.earned_premium <= later.earned_premium
    # a day later never earns more than one day's premium plus rounding (pro rata)
    if method == "pro_rata" and second == first + 1:
        assert later.earned_premium - earlier.earned_premium <= premium // length + 1
