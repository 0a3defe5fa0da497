"""The demo's book (pure): the same for the same size and day, and at any size it holds what
the demo promises; its payers' bank lines are noisy but keep what a matcher needs."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from premium_billing.demo.book import PLANS, build, year_start
from premium_billing.policies.rules.schedule import BILLING_PLANS

DAYS = st.one_of(
    st.dates(min_value=date(2025, 3, 1), max_value=date(2030, 12, 31)),
    st.sampled_from([date(2027, 1, 1), date(2027, 1, 2), date(2027, 3, 31), date(2027, 4, 1)]),
)


@settings(max_examples=30)
@given(size=st.integers(min_value=8, max_value=60), today=DAYS)
def test_every_plan_in_both_currencies_and_two_who_never_pay_at_any_size(size, today):
    book = build(size, today)
    assert len(book) == size
    assert {p for p, _ in PLANS} == set(BILLING_PLANS)
    pairs = {(h.policy["billing_plan"], h.policy["currency"]) for h in book}
    assert {(p, c) for p in BILLING_PLANS for c in ("USD", "EUR")} <= pairs
    assert sum(h.payer.habit == "never" for h in book) >= 2
    start = year_start(today)
    assert start.month == 1 and start.day == 1 and (today - start).days >= 90
    for holder in book:
        policy = holder.policy
        assert start <= policy["effective_date"] < today
        assert policy["lines"] == holder.pets and 1 <= len(holder.pets) <= 2
        for pet in holder.pets:
            assert pet["pet"]["species"] in ("cat", "dog")
            assert pet["pet"]["date_of_birth"] < today and pet["annual_premium"] > 0
        fees = policy["fees"]
        assert fees["installment_fee"] >= 0 and fees["policy_fee"] >= 0
    numbers = [h.policy["policy_number"] for h in book]
    assert len(set(numbers)) == size


def test_the_same_size_and_day_give_the_same_book():
    today = date(2026, 11, 30)
    assert build(40, today) == build(40, today)
    assert build(40, today) != build(40, today + timedelta(days=1))
