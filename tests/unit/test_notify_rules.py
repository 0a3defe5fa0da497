"""The pure rules of notices and outbound events: backoff, giving up, the pets named,
URLs and event types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from premium_billing.notifications import rules as notices
from premium_billing.outbound import rules as events

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)


@given(st.integers(min_value=1, max_value=200), st.floats(min_value=0.1, max_value=600))
def test_email_backoff_grows_and_is_capped_at_an_hour(attempts, base):
    first = notices.retry_at(NOW, attempts, base)
    second = notices.retry_at(NOW, attempts + 1, base)
    assert NOW < first <= second <= NOW + timedelta(hours=1)


def test_email_backoff_doubles():
    waits = [(notices.retry_at(NOW, n, 30) - NOW).total_seconds() for n in range(1, 6)]
    assert waits == [30, 60, 120, 240, 480]


def test_gives_up_on_the_last_attempt():
    assert not notices.gives_up(11, 12)
    assert notices.gives_up(12, 12)


def test_cover_at_risk_names_the_pets():
    assert notices.cover_at_risk(["Rex"]) == "Rex's cover"
    assert notices.cover_at_risk(["Rex", "Mia"]) == "Rex's and Mia's cover"
    assert notices.cover_at_risk(["Rex", "Mia", "Bo"]) == "Rex's, Mia's and Bo's cover"
    assert notices.cover_at_risk(["Rex", " Rex ", ""]) == "Rex's cover"
    assert notices.cover_at_risk([]) == "your cover"


@given(st.lists(st.from_regex(r"[A-Z][a-z]{0,8}( [A-Z][a-z]{0,5})?", fullmatch=True), max_size=6))
def test_every_pet_is_named_once(names):
    phrase = notices.cover_at_risk(names)
    for name in {n.strip() for n in names}:
        assert f"{name}'s" in phrase


def test_event_retries_span_about_three_days_then_stop():
    at = NOW
    for attempts in range(1, len(events.RETRY_SCHEDULE) + 1):
        later = events.retry_at(at, attempts)
        assert later is not None and later > at
        at = later
    assert timedelta(days=2, hours=20) < at - NOW <= timedelta(days=3)
    assert events.retry_at(at, len(events.RETRY_SCHEDULE) + 1) is None


@given(st.integers(min_value=0, max_value=10 * 24 * 60))
def test_endpoint_disabled_only_after_five_days_of_failures(minutes):
    since = NOW - timedelta(minutes=minutes)
    assert events.disables(since, NOW, 5) == (minutes >= 5 * 24 * 60)
    assert not events.disables(None, NOW, 5)


def test_urls_and_event_types():
    assert events.url_problem("https://insurer.example/hooks") is None
    assert events.url_problem("http://127.0.0.1:9000/x") is None
    for bad in ("ftp://x/y", "https://", "http://u:p@x/", "x", "http://x:99999/"):
        assert events.url_problem(bad), bad
    assert events.event_types_problem(["invoice.issued"]) is None
    assert events.event_types_problem([])
    assert "invoice.paid" in (events.event_types_problem(["invoice.paid"]) or "")
    assert events.succeeded(204) and not events.succeeded(302) and not events.succeeded(None)
