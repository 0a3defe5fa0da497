"""Schedules: anchor-day due dates, exact installment splits, fees, respreading a change."""

from __future__ import annotations

import calendar
import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from premium_billing.errors import ScheduleError
from premium_billing.policies.rules.schedule import (
    BILLING_PLANS,
    MONTHS_PER_INSTALLMENT,
    PlannedInstallment,
    add_months,
    build_schedule,
    due_dates,
    respread,
    takes_endorsement,
    term_end,
    term_premium,
)

dates = st.dates(min_value=date(1990, 1, 1), max_value=date(2200, 12, 31))
plans = st.sampled_from(BILLING_PLANS)


def test_plans() -> None:
    assert MONTHS_PER_INSTALLMENT == {"annual": 12, "semiannual": 6, "quarterly": 3, "monthly": 1}
    assert BILLING_PLANS == ("annual", "semiannual", "quarterly", "monthly")


# --- add_months / term_end -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("anchor", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2026, 1, 31), 2, date(2026, 3, 31)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),
        (date(2026, 1, 30), 1, date(2026, 2, 28)),
        (date(2026, 1, 29), 1, date(2026, 2, 28)),
        (date(2028, 1, 29), 1, date(2028, 2, 29)),
        (date(2026, 1, 15), 0, date(2026, 1, 15)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2026, 12, 31), 1, date(2027, 1, 31)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 1, 31), -2, date(2025, 11, 30)),
        (date(2028, 2, 29), 12, date(2029, 2, 28)),
        (date(2028, 2, 29), 48, date(2032, 2, 29)),
    ],
)
def test_add_months(anchor: date, months: int, expected: date) -> None:
    assert add_months(anchor, months) == expected


def test_term_end_is_the_exclusive_expiration_date() -> None:
    assert term_end(date(2026, 1, 1), 12) == date(2027, 1, 1)
    assert term_end(date(2026, 3, 15), 6) == date(2026, 9, 15)
    assert term_end(date(2028, 2, 29), 12) == date(2029, 2, 28)


@pytest.mark.parametrize("months", [0, -12])
def test_term_end_refuses_non_positive_terms(months: int) -> None:
    with pytest.raises(ScheduleError) as info:
        term_end(date(2026, 1, 1), months)
    assert info.value.field == "term_months"


@given(anchor=dates, months=st.integers(min_value=-600, max_value=600))
def test_add_months_keeps_the_anchor_day_clamped(anchor: date, months: int) -> None:
    result = add_months(anchor, months)
    assert (result.year * 12 + result.month) - (anchor.year * 12 + anchor.month) == months
    assert result.day == min(anchor.day, calendar.monthrange(result.year, result.month)[1])


# --- due dates ---------------------------------------------------------------------------------


def test_due_dates_from_the_31st_keep_the_anchor_day() -> None:
    assert due_dates(date(2026, 1, 31), 12, "monthly") == [
        date(2026, 1, 31),
        date(2026, 2, 28),
        date(2026, 3, 31),
        date(2026, 4, 30),
        date(2026, 5, 31),
        date(2026, 6, 30),
        date(2026, 7, 31),
        date(2026, 8, 31),
        date(2026, 9, 30),
        date(2026, 10, 31),
        date(2026, 11, 30),
        date(2026, 12, 31),
    ]


def test_due_dates_leap_year() -> None:
    assert due_dates(date(2028, 1, 31), 12, "monthly")[:3] == [
        date(2028, 1, 31),
        date(2028, 2, 29),
        date(2028, 3, 31),
    ]


@pytest.mark.parametrize(
    ("effective", "expected_first_three"),
    [
        (date(2026, 1, 29), [date(2026, 1, 29), date(2026, 2, 28), date(2026, 3, 29)]),
        (date(2026, 1, 30), [date(2026, 1, 30), date(2026, 2, 28), date(2026, 3, 30)]),
        (date(2026, 1, 31), [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]),
        (date(2028, 1, 29), [date(2028, 1, 29), date(2028, 2, 29), date(2028, 3, 29)]),
        (date(2028, 1, 30), [date(2028, 1, 30), date(2028, 2, 29), date(2028, 3, 30)]),
    ],
)
def test_due_dates_anchors_29_30_31(effective: date, expected_first_three: list[date]) -> None:
    assert due_dates(effective, 12, "monthly")[:3] == expected_first_three


def test_due_dates_per_plan() -> None:
    start = date(2026, 1, 1)
    assert due_dates(start, 12, "annual") == [start]
    assert due_dates(start, 12, "semiannual") == [start, date(2026, 7, 1)]
    assert due_dates(start, 12, "quarterly") == [
        start,
        date(2026, 4, 1),
        date(2026, 7, 1),
        date(2026, 10, 1),
    ]
    assert len(due_dates(start, 12, "monthly")) == 12
    assert due_dates(date(2025, 11, 30), 6, "quarterly") == [
        date(2025, 11, 30),
        date(2026, 2, 28),
    ]
    assert due_dates(date(2028, 2, 29), 24, "annual") == [date(2028, 2, 29), date(2029, 2, 28)]


def test_due_dates_unknown_plan() -> None:
    with pytest.raises(ScheduleError) as info:
        due_dates(date(2026, 1, 1), 12, "weekly")
    assert info.value.field == "billing_plan"


@pytest.mark.parametrize(
    ("term_months", "plan"),
    [(0, "monthly"), (-12, "monthly"), (7, "quarterly"), (6, "annual"), (9, "semiannual")],
)
def test_due_dates_term_must_be_a_positive_multiple(term_months: int, plan: str) -> None:
    with pytest.raises(ScheduleError) as info:
        due_dates(date(2026, 1, 1), term_months, plan)
    assert info.value.field == "term_months"


@given(effective=dates, plan=plans, periods=st.integers(min_value=1, max_value=10))
def test_due_dates_increase_and_keep_the_anchor_day(
    effective: date, plan: str, periods: int
) -> None:
    step = MONTHS_PER_INSTALLMENT[plan]
    term_months = step * periods
    result = due_dates(effective, term_months, plan)
    assert len(result) == periods
    assert result[0] == effective
    assert all(a < b for a, b in zip(result, result[1:], strict=False))
    assert result[-1] < term_end(effective, term_months)
    for k, due in enumerate(result):
        months = (due.year * 12 + due.month) - (effective.year * 12 + effective.month)
        assert months == k * step
        assert due.day == min(effective.day, calendar.monthrange(due.year, due.month)[1])


# --- term premium -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annual", "months", "expected"),
    [
        (100000, 12, 100000),
        (100000, 6, 50000),
        (100001, 6, 50001),  # 50000.5 → 50001
        (99999, 1, 8333),  # 8333.25 → 8333
        (100000, 24, 200000),
        (12345, 3, 3086),  # 3086.25 → 3086
        (10, 9, 8),  # 7.5 → 8
    ],
)
def test_term_premium(annual: int, months: int, expected: int) -> None:
    assert term_premium(annual, months) == expected


# --- build_schedule ------------------------------------------------------------------------------


def test_monthly_1000_puts_the_remainder_on_the_first_installment() -> None:
    schedule = build_schedule(date(2026, 1, 1), 12, "monthly", 100000)
    assert [i.amount for i in schedule] == [8337] + [8333] * 11
    assert sum(i.amount for i in schedule) == 100000
    assert [i.number for i in schedule] == list(range(1, 13))
    assert schedule[0].due_date == date(2026, 1, 1)
    assert schedule[11].due_date == date(2026, 12, 1)
    assert all(i.fee == 0 for i in schedule)


def test_fees_installment_fee_on_every_policy_fee_on_the_first() -> None:
    schedule = build_schedule(
        date(2026, 1, 31), 12, "quarterly", 100001, installment_fee=250, policy_fee=1500
    )
    assert schedule == [
        PlannedInstallment(1, date(2026, 1, 31), 25001, 1750),
        PlannedInstallment(2, date(2026, 4, 30), 25000, 250),
        PlannedInstallment(3, date(2026, 7, 31), 25000, 250),
        PlannedInstallment(4, date(2026, 10, 31), 25000, 250),
    ]


def test_annual_schedule_is_one_installment() -> None:
    assert build_schedule(date(2026, 5, 5), 12, "annual", 48000, policy_fee=500) == [
        PlannedInstallment(1, date(2026, 5, 5), 48000, 500)
    ]


def test_planned_installment_is_frozen() -> None:
    item = PlannedInstallment(1, date(2026, 1, 1), 100, 0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.amount = 200  # type: ignore[misc]


@pytest.mark.parametrize("field", ["term_premium", "installment_fee", "policy_fee"])
def test_build_schedule_refuses_negative_money(field: str) -> None:
    kwargs = {"term_premium": 1000, "installment_fee": 0, "policy_fee": 0, field: -1}
    with pytest.raises(ScheduleError) as info:
        build_schedule(date(2026, 1, 1), 12, "monthly", **kwargs)
    assert info.value.field == field


@given(
    effective=dates,
    plan=plans,
    periods=st.integers(min_value=1, max_value=4),
    premium=st.integers(min_value=0, max_value=10**10),
    installment_fee=st.integers(min_value=0, max_value=10**4),
    policy_fee=st.integers(min_value=0, max_value=10**5),
)
def test_build_schedule_sums_exactly(
    effective: date,
    plan: str,
    periods: int,
    premium: int,
    installment_fee: int,
    policy_fee: int,
) -> None:
    term_months = MONTHS_PER_INSTALLMENT[plan] * periods
    schedule = build_schedule(effective, term_months, plan, premium, installment_fee, policy_fee)
    count = term_months // MONTHS_PER_INSTALLMENT[plan]
    assert len(schedule) == count
    assert sum(i.amount for i in schedule) == premium
    assert len({i.amount for i in schedule[1:]}) <= 1
    assert all(i.amount >= schedule[-1].amount for i in schedule)
    assert schedule[0].amount - schedule[-1].amount < count
    assert sum(i.fee for i in schedule) == installment_fee * count + policy_fee
    assert [i.due_date for i in schedule] == due_dates(effective, term_months, plan)
    assert [i.number for i in schedule] == list(range(1, count + 1))


# --- respread ------------------------------------------------------------------------------------


def test_respread_examples() -> None:
    # 1,000 spread over six of 83.33: 166 each, the 4 cent remainder on the first
    assert respread([8333] * 6, 1000) == [8503] + [8499] * 5
    assert respread([8333] * 6, -1000) == [8163] + [8167] * 5
    assert respread([8337, 8333], 1) == [8338, 8333]
    assert respread([100], -30) == [70]
    assert respread([5000, 5000, 5000], 0) == [5000, 5000, 5000]


def test_respread_needs_an_unbilled_installment() -> None:
    with pytest.raises(ScheduleError):
        respread([], 100)


@given(
    unbilled=st.lists(st.integers(min_value=0, max_value=10**8), min_size=1, max_size=24),
    delta=st.integers(min_value=-(10**9), max_value=10**9),
)
def test_respread_sums_exactly_and_spreads_evenly(unbilled: list[int], delta: int) -> None:
    result = respread(unbilled, delta)
    assert len(result) == len(unbilled)
    assert sum(result) == sum(unbilled) + delta
    changes = [new - old for new, old in zip(result, unbilled, strict=True)]
    assert len(set(changes[1:])) <= 1
    assert abs(changes[-1]) == abs(delta) // len(unbilled)
    assert 0 <= abs(changes[0]) - abs(changes[-1]) < len(unbilled)


# --- which installments an endorsement changes --------------------------------------------


@given(
    effective=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)),
    plan=st.sampled_from(["annual", "semiannual", "quarterly", "monthly"]),
    offset=st.integers(min_value=0, max_value=400),
)
def test_an_endorsement_changes_a_suffix_of_the_schedule(
    effective: date, plan: str, offset: int
) -> None:
    dates = due_dates(effective, 12, plan)
    change = date.fromordinal(effective.toordinal() + offset)
    taken = [takes_endorsement(d, change) for d in dates]
    # Once one installment takes the change, every later one does; none before its date.
    assert taken == sorted(taken)
    assert all(d >= change for d, t in zip(dates, taken, strict=True) if t)
    assert all(d < change for d, t in zip(dates, taken, strict=True) if not t)


def test_an_endorsement_takes_the_installment_due_on_its_own_date() -> None:
    assert takes_endorsement(date(2027, 3, 1), date(2027, 3, 1))
    assert not takes_endorsement(date(2026, 12, 1), date(2027, 2, 15))
