"""The pure rules of what a Stripe event says moved (issue 13, items 6-7)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from premium_billing.stripe_billing.rules import (
    INQUIRY_STATUSES,
    DisputeMoney,
    dispute_flag,
    dispute_money,
    money_received,
)

STATUSES = (*INQUIRY_STATUSES, "needs_response", "under_review", "won", "lost")
TYPES = tuple(
    f"charge.dispute.{t}"
    for t in ("created", "updated", "closed", "funds_withdrawn", "funds_reinstated")
)


@given(st.integers(0, 10**12), st.integers(0, 10**12), st.sampled_from([True, False, None]))
def test_the_documented_field_is_read_as_it_is(moved, amount, captured):
    assert money_received(moved, amount, captured=captured) == moved


@given(st.integers(0, 10**12))
def test_without_the_field_an_uncaptured_charge_moved_nothing(amount):
    assert money_received(None, amount, captured=False) == 0
    assert money_received(None, amount, captured=True) == amount
    assert money_received(None, amount) == amount
    assert money_received(None, None) is None


def test_an_inquiry_moves_no_money():
    for event_type in TYPES[:3]:
        for status in ("warning_needs_response", "warning_under_review"):
            assert dispute_money(event_type, status) == DisputeMoney(False, False)
        # Closed inquiry: nothing taken; what an earlier reversal took comes back.
        assert dispute_money(event_type, "warning_closed") == DisputeMoney(False, True)


def test_funds_move_as_stripe_says():
    for event_type, status in itertools.product(TYPES, STATUSES):
        money = dispute_money(event_type, status)
        if event_type.endswith("funds_withdrawn") or status not in INQUIRY_STATUSES:
            assert money.withdrawn, (event_type, status)
        if money.reinstated and status != "warning_closed":
            assert money.withdrawn  # given back implies taken, whatever the order
        assert money.reinstated == (
            event_type.endswith("funds_reinstated") or status in ("won", "warning_closed")
        )
    assert dispute_money("charge.dispute.closed", "lost") == DisputeMoney(True, False)


@given(st.integers(1, 10**9), st.integers(1, 10**9))
def test_a_dispute_larger_than_its_payment_is_flagged(disputed, paid):
    flag = dispute_flag("dp_1", disputed, paid, "USD")
    assert (flag is not None) == (disputed > paid)
    if flag:
        assert "dp_1" in flag and str(disputed) in flag and str(paid) in flag
