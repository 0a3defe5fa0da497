"""The business date's window (premium_billing.clock): which dates a job's as_of, a
payment's received_on and an effective date may take, as one pure rule; and its settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from premium_billing.clock import (
    CALENDAR_END,
    CALENDAR_START,
    date_window,
    outside_calendar,
    outside_window,
    window_problem,
)
from premium_billing.config import Settings, SettingsError

TODAY = date(2026, 11, 29)
days = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
todays = st.dates(min_value=date(1950, 1, 1), max_value=date(2950, 12, 31))
windows = st.integers(min_value=0, max_value=4000)


@dataclass(frozen=True)
class Config:
    allow_time_travel: bool = False
    business_date_window_days: int = 90
    timezone: ZoneInfo = ZoneInfo("UTC")


def test_the_issue_examples_are_refused():
    # A job run for 2027-02-20 on 2026-11-29; a payment received on 9999-12-31.
    job = outside_window(date(2027, 2, 20), TODAY, 90, ahead=False)
    assert job == (
        "Must be between 2026-08-31 and 2026-11-29: not after the business date, "
        "2026-11-29, nor more than 90 days before it."
    )
    assert outside_window(date(9999, 12, 31), TODAY, 90, ahead=False) is not None
    effective = outside_window(date(2027, 2, 28), TODAY, 90, ahead=True)
    assert effective == (
        "Must be between 2026-08-31 and 2027-02-27: within 90 days of the business date, "
        "2026-11-29."
    )


def test_the_bounds_are_inclusive():
    assert outside_window(TODAY, TODAY, 0, ahead=False) is None
    assert outside_window(TODAY - timedelta(days=90), TODAY, 90, ahead=False) is None
    assert outside_window(TODAY - timedelta(days=91), TODAY, 90, ahead=False) is not None
    assert outside_window(TODAY + timedelta(days=1), TODAY, 90, ahead=False) is not None
    assert outside_window(TODAY + timedelta(days=90), TODAY, 90, ahead=True) is None
    assert outside_window(TODAY + timedelta(days=91), TODAY, 90, ahead=True) is not None
    assert outside_window(TODAY - timedelta(days=90), TODAY, 90, ahead=True) is None


@given(day=days, today=todays, window=windows, ahead=st.booleans())
def test_refused_exactly_outside_the_window(day, today, window, ahead):
    earliest, latest = date_window(today, window, ahead=ahead)
    refusal = outside_window(day, today, window, ahead=ahead)
    assert (refusal is None) == (earliest <= day <= latest)
    if refusal is not None:
        assert earliest.isoformat() in refusal and latest.isoformat() in refusal
        assert today.isoformat() in refusal


@given(today=todays, window=windows, ahead=st.booleans())
def test_the_window_holds_the_business_date_and_stays_in_the_calendar(today, window, ahead):
    earliest, latest = date_window(today, window, ahead=ahead)
    assert CALENDAR_START <= earliest <= today <= latest <= CALENDAR_END
    if not ahead:
        assert latest == today  # a job's as_of, a payment's received_on: never ahead


@given(day=days, today=todays, window=windows, ahead=st.booleans())
def test_a_wider_window_refuses_no_date_a_narrower_one_accepts(day, today, window, ahead):
    if outside_window(day, today, window, ahead=ahead) is None:
        assert outside_window(day, today, window + 1, ahead=ahead) is None
        assert outside_window(day, today, window, ahead=True) is None


@given(today=st.dates(), window=st.integers(min_value=0, max_value=10**9))
def test_a_huge_window_is_no_error(today, window):
    earliest, latest = date_window(today, window, ahead=True)
    assert earliest <= latest


def test_a_negative_window_is_a_programming_error():
    with pytest.raises(ValueError):
        date_window(TODAY, -1, ahead=True)


@given(day=days)
def test_time_travel_leaves_only_the_calendar(day):
    travel = Config(allow_time_travel=True)
    assert window_problem(travel, day, ahead=False) == outside_calendar(day)
    assert (outside_calendar(day) is None) == (CALENDAR_START <= day <= CALENDAR_END)


def test_the_business_date_is_the_date_in_the_business_time_zone():
    now = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)  # Nov 30, 12:30 in Auckland
    auckland = Config(timezone=ZoneInfo("Pacific/Auckland"))
    assert window_problem(auckland, date(2026, 11, 30), ahead=False, now=now) is None
    assert window_problem(Config(), date(2026, 11, 30), ahead=False, now=now) is not None
    assert window_problem(Config(), date(2026, 11, 29), ahead=False, now=now) is None


def test_settings_defaults_and_switches():
    assert Settings().allow_time_travel is False  # off unless asked for
    assert Settings().business_date_window_days == 90
    on = Settings.from_env({"ALLOW_TIME_TRAVEL": "true", "BUSINESS_DATE_WINDOW_DAYS": "30"})
    assert on.allow_time_travel is True and on.business_date_window_days == 30
    assert Settings.from_env({"ALLOW_TIME_TRAVEL": "off"}).allow_time_travel is False
    with pytest.raises(SettingsError, match="ALLOW_TIME_TRAVEL"):
        Settings.from_env({"ALLOW_TIME_TRAVEL": "maybe"})  # not silently off
    with pytest.raises(SettingsError, match="BUSINESS_DATE_WINDOW_DAYS"):
        Settings.from_env({"BUSINESS_DATE_WINDOW_DAYS": "-1"})
