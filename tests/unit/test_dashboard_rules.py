"""The dashboard's pure rules: roles, the login throttle, aging buckets, months, rates, chart
geometry and spreadsheet-safe CSV text."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from premium_billing.dashboard import rules

LOCK = rules.Throttle(max_failures=5, lock=timedelta(minutes=15))
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_roles_as_the_api_the_auditor_reads_only():
    assert [r for r in rules.ROLES if rules.may_read(r)] == ["admin", "finance", "auditor"]
    assert [r for r in rules.ROLES if rules.may_write(r)] == ["admin", "finance"]


def test_five_failures_within_the_window_lock_until_the_oldest_of_them_is_old():
    failures = [NOW - timedelta(minutes=m) for m in (1, 2, 3, 4)]
    assert rules.locked_until(failures, NOW, LOCK) is None
    fifth = NOW - timedelta(minutes=10)
    assert rules.locked_until([*failures, fifth], NOW, LOCK) == fifth + LOCK.lock
    stale = NOW - timedelta(minutes=15)  # exactly the lock old: no longer counts
    assert rules.locked_until([*failures, stale], NOW, LOCK) is None
    future = NOW + timedelta(seconds=1)  # not yet happened: not counted
    assert rules.locked_until([*failures, future], NOW, LOCK) is None


@given(st.lists(st.integers(min_value=0, max_value=3600), max_size=30))
def test_a_lock_ends_within_the_lock_from_now_and_only_with_enough_recent_failures(seconds):
    failures = [NOW - timedelta(seconds=s) for s in seconds]
    until = rules.locked_until(failures, NOW, LOCK)
    recent = [f for f in failures if NOW - f < LOCK.lock]
    if len(recent) < LOCK.max_failures:
        assert until is None
    else:
        assert until is not None and NOW < until <= NOW + LOCK.lock
        # at the instant it ends, it is no longer locked
        assert rules.locked_until(failures, until, LOCK) is None


def test_minutes_left_round_up_to_at_least_one():
    assert rules.minutes_left(NOW + timedelta(minutes=14, seconds=1), NOW) == 15
    assert rules.minutes_left(NOW + timedelta(minutes=14), NOW) == 14
    assert rules.minutes_left(NOW + timedelta(seconds=1), NOW) == 1
    assert rules.minutes_left(NOW, NOW) == 1


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 1, 1)),
       st.integers(min_value=0, max_value=2000))  # fmt: skip
def test_months_are_every_month_of_the_period_in_order(start, days):
    end = start + timedelta(days=days)
    months = rules.months(start, end)
    assert months[0] == rules.month_of(start) and months[-1] == rules.month_of(end)
    assert len(months) == (end.year - start.year) * 12 + end.month - start.month + 1
    assert months == sorted(set(months))
    later_month = (end.year, end.month) > (start.year, start.month)
    assert rules.months(end, start) == ([] if later_month else months)


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=1, max_value=10**6))
def test_a_rate_in_basis_points_is_rounded_half_up(part, whole):
    part = min(part, whole)
    rate = rules.rate_bp(part, whole)
    assert 0 <= rate <= 10000
    assert abs(rate * whole - part * 10000) * 2 <= whole  # within half a basis point
    assert rules.rate_bp(part, 0) == 0


@given(st.integers(min_value=-5, max_value=10**15))
def test_an_axis_top_is_one_two_or_five_times_a_power_of_ten_at_least_the_value(value):
    top = rules.nice_ceiling(value)
    assert top >= value and top >= 1
    digits = str(top).rstrip("0")
    assert digits in ("1", "2", "5")
    if value > 1:
        assert top * 2 <= value * 5  # never more than 2.5 times the value


@given(
    st.lists(st.integers(min_value=-100, max_value=10**9), min_size=1, max_size=24),
    st.integers(min_value=1, max_value=3),
)
def test_bars_stay_in_the_plot_and_grow_with_their_value(values, series):
    data = [values] * series
    chart = rules.bar_chart([str(i) for i in range(len(values))], data)
    assert len(chart.bars) == len(values) * series
    for bar in chart.bars:
        assert chart.top <= bar.y <= chart.bottom and bar.y + bar.height == chart.bottom
        assert chart.left <= bar.x and bar.x + bar.width <= chart.width
    by_value = sorted(chart.bars, key=lambda b: b.value)
    assert [b.height for b in by_value] == sorted(b.height for b in by_value)
    tallest = max(chart.bars, key=lambda b: b.value)
    if tallest.value > 0:
        assert tallest.height * 5 >= (chart.bottom - chart.top) * 2  # the axis fits the data
    assert [t.value for t in chart.ticks] == [chart.maximum * i // 4 for i in range(5)]


def test_a_fixed_maximum_scales_rates_and_the_funnel_centres_its_stages():
    chart = rules.bar_chart(["#1", "#2"], [[5000, 10000]], maximum=10000)
    half, full = chart.bars
    assert full.height == chart.bottom - chart.top and abs(half.height * 2 - full.height) <= 1
    stages = rules.funnel([("active", 100), ("past due", 50), ("lapsed", 0)])
    assert [s.width for s in stages] == [440, 220, 2]
    assert all(s.x + s.width // 2 in (320, 319, 321) for s in stages)


def test_csv_text_defuses_spreadsheet_formulas():
    assert rules.csv_text("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    for start in "+-@\t\r":
        assert rules.csv_text(start + "x") == "'" + start + "x"
    assert rules.csv_text("Ann Lee") == "Ann Lee" and rules.csv_text(None) == ""
