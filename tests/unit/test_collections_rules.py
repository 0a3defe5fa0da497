"""The delinquency rules (`collections.rules`): the default timeline by hand, properties of
states and steps for any unpaid installments and dates, and plan validation."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from premium_billing.collections.rules import (
    PRODUCTS,
    STATES,
    Plan,
    PlanError,
    Unpaid,
    after_lapse,
    assess,
    parse_plans,
)

D = date(2026, 1, 1)
PLAN = Plan("pet")
DEFAULTS = {p: Plan(p) for p in PRODUCTS}
ORDER = {"active": 0, "past_due": 1, "in_grace": 2, "lapsed": 3}

dates = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
# Generated dates are slow to draw on a loaded machine: no deadline, no too-slow check.
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
unpaid = st.lists(st.builds(Unpaid, dates, st.integers(min_value=0, max_value=10**7)), max_size=6)


def test_the_default_timeline_day_by_day():
    owed = [Unpaid(D, 10000)]
    seen = []
    through = None
    for offset in range(-10, 40):
        found = assess(owed, PLAN, D + timedelta(days=offset), stale_days=3, through=through)
        seen += [(s.step, s.on) for s in found.steps]
        through = found.stepped_through
        if offset in (0, 1, 13, 14, 29, 30):
            assert found.state == {0: "active", 1: "past_due", 13: "past_due", 14: "in_grace",
                                   29: "in_grace", 30: "lapsed"}[offset]  # fmt: skip
    assert seen == [
        ("reminder", D - timedelta(days=3)),
        ("reminder", D + timedelta(days=3)),
        ("reminder", D + timedelta(days=10)),
        ("grace_notice", D + timedelta(days=14)),
        ("final_notice", D + timedelta(days=23)),
        ("lapse", D + timedelta(days=30)),
    ]


def test_below_the_threshold_nothing_is_chased():
    found = assess([Unpaid(D, 499)], PLAN, D + timedelta(days=40), stale_days=3)
    assert (found.state, found.steps) == ("active", ())


def test_a_late_run_skips_stale_notices_but_never_the_lapse():
    found = assess([Unpaid(D, 10000)], PLAN, D + timedelta(days=35), stale_days=3)
    assert [(s.step, s.stale) for s in found.steps] == [
        ("reminder", True), ("reminder", True), ("reminder", True), ("grace_notice", True),
        ("final_notice", True), ("lapse", False),
    ]  # fmt: skip


def test_paying_the_oldest_re_anchors_on_the_next():
    owed = [Unpaid(D, 0), Unpaid(D + timedelta(days=31), 10000)]
    found = assess(owed, PLAN, D + timedelta(days=35), stale_days=3)
    assert found.anchor == D + timedelta(days=31)
    assert found.state == "past_due"


@relaxed
@given(unpaid, dates, st.integers(min_value=0, max_value=10))
def test_state_and_steps_follow_the_anchor(owed, as_of, stale):
    found = assess(owed, PLAN, as_of, stale_days=stale)
    assert found.state in STATES
    real = [u for u in owed if u.amount > 0]
    if not real:
        assert (found.state, found.anchor, found.steps) == ("active", None, ())
        return
    assert found.anchor == min(u.due_date for u in real)
    assert found.amount_overdue == sum(u.amount for u in real if u.due_date < as_of)
    for step in found.steps:
        assert step.on <= as_of  # never a step before its day
        assert step.stale == (step.step != "lapse" and (as_of - step.on).days > stale)
    if found.amount_unpaid < PLAN.threshold:
        assert found.state == "active" and found.steps == ()


@relaxed
@given(unpaid, dates, st.integers(min_value=1, max_value=60))
def test_a_state_never_goes_back_as_days_pass_without_payment(owed, as_of, later):
    first = assess(owed, PLAN, as_of, stale_days=3)
    second = assess(owed, PLAN, as_of + timedelta(days=later), stale_days=3)
    if first.amount_unpaid >= PLAN.threshold:
        assert ORDER[second.state] >= ORDER[first.state]


@relaxed
@given(unpaid, dates, st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=8))
def test_runs_on_any_days_take_each_step_at_most_once(owed, start, gaps):
    through, taken, day = None, [], start
    anchor = None
    for gap in gaps:
        found = assess(owed, PLAN, day, stale_days=3, through=through)
        anchor = anchor or found.anchor
        taken += [(s.step, s.days_after_due) for s in found.steps]
        through = found.stepped_through
        day += timedelta(days=gap)
    assert len(taken) == len(set(taken))


def test_reinstatement_window():
    lapsed = D + timedelta(days=30)
    assert after_lapse(lapsed, lapsed + timedelta(days=30), 0, PLAN) == "reinstate"
    assert after_lapse(lapsed, lapsed + timedelta(days=10), 1, PLAN) == "wait"
    assert after_lapse(lapsed, lapsed + timedelta(days=31), 0, PLAN) == "closed"


def test_a_plan_file_over_the_defaults():
    plans = parse_plans({"pet": {"late_fee": 1500, "threshold": 100}}, DEFAULTS)
    assert plans["pet"].late_fee == 1500 and plans["general"] == DEFAULTS["general"]
    assert ("late_fee", 14) in plans["pet"].timeline()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "DELINQUENCY_PLANS: an object"),
        ({"car": {}}, "DELINQUENCY_PLANS: car: not a product"),
        ({"pet": {"grace_days": -1}}, "DELINQUENCY_PLANS: pet.grace_days: must be at least 0"),
        ({"pet": {"grace": 30}}, "DELINQUENCY_PLANS: pet.grace: unknown field"),
        ({"pet": {"threshold": "5"}}, "DELINQUENCY_PLANS: pet.threshold: a whole number"),
        ({"pet": {"grace_start_days": 40}}, "DELINQUENCY_PLANS: pet.grace_start_days: between"),
        ({"pet": {"steps": [{"step": "nag", "days": 1}]}}, "DELINQUENCY_PLANS: pet.steps[0].step"),
        ({"pet": {"steps": [{"step": "reminder", "from": "due", "days": 3}]}},
         "DELINQUENCY_PLANS: pet.steps: exactly one lapse"),
        ({"pet": {"autopay_retry_days": [3, 45]}},
         "DELINQUENCY_PLANS: pet.autopay_retry_days: a retry after the lapse"),
    ],
)  # fmt: skip
def test_a_bad_plan_is_refused_naming_the_field(raw, message):
    with pytest.raises(PlanError) as refused:
        parse_plans(raw, DEFAULTS)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)
