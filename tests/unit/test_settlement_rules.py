"""What a cancellation settles (`cancellations.rules`): the issue's worked examples by hand,
and properties for any term's invoices and payments (money and dates)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from premium_billing.cancellations.rules import (
    Allocated,
    TermInvoice,
    premium_cut,
    settlement,
    term_invoice,
    unbill,
)
from premium_billing.errors import DomainError
from premium_billing.payments.rules import mark_paid_refusal, refund_channel, stripe_refund_action
from premium_billing.policies.rules.proration import cancellation

START = date(2026, 1, 1)
END = date(2027, 1, 1)


def _inv(
    invoice_id: int,
    due: date,
    premium: int,
    paid: int = 0,
    fees: int = 0,
    written_off: int = 0,
) -> TermInvoice:
    return TermInvoice(
        invoice_id, due, premium, fees, paid, written_off, premium + fees - paid - written_off,
        payable=premium + fees - paid - written_off > 0,
    )  # fmt: skip


def test_annual_paid_in_full_cancelled_pro_rata_and_short_rate() -> None:
    invoice = _inv(1, START, 100000, paid=100000)
    paid = [Allocated(7, 1, 100000, date(2026, 1, 5))]
    for method, earned, refund in (("pro_rata", 49589, 50411), ("short_rate", 54630, 45370)):
        assert cancellation(100000, 0, START, END, date(2026, 7, 1), method).earned_premium == (
            earned
        )
        plan = settlement(earned, [invoice], paid)
        assert (plan.final_invoice, plan.refund_due, plan.balance_due) == (0, refund, 0)
        assert plan.unbilling.credits == {}
        assert plan.unbilling.take_backs == {7: {1: refund}}
        assert plan.refunds == {7: refund}


def test_monthly_two_paid_march_open_cancelled_pro_rata() -> None:
    """Earned 200.00 (73/365), paid 166.70: March credited 50.03, 33.30 stays due."""
    earned = cancellation(100000, 0, START, END, date(2026, 3, 15), "pro_rata").earned_premium
    assert earned == 20000
    invoices = [
        _inv(1, date(2026, 1, 1), 8337, paid=8337),
        _inv(2, date(2026, 2, 1), 8333, paid=8333),
        _inv(3, date(2026, 3, 1), 8333),
    ]
    paid = [Allocated(10, 1, 8337, date(2026, 1, 3)), Allocated(11, 2, 8333, date(2026, 2, 3))]
    plan = settlement(earned, invoices, paid)
    assert (plan.billed_premium, plan.paid_premium) == (25003, 16670)
    assert plan.unbilling.credits == {3: 5003}
    assert plan.unbilling.take_backs == {}
    assert (plan.final_invoice, plan.refund_due, plan.balance_due) == (0, 0, 3330)


def test_nothing_billed_is_invoiced_at_once() -> None:
    plan = settlement(7594, [], [])
    assert (plan.final_invoice, plan.balance_due, plan.refund_due) == (7594, 7594, 0)


def test_fees_are_earned_when_billed_and_paid_first() -> None:
    """A fee is never credited nor refunded: what an invoice was paid pays its fee first."""
    invoice = _inv(1, START, 10000, fees=500, paid=3000)
    assert (invoice.premium_paid, invoice.creditable) == (2500, 7500)
    plan = settlement(0, [invoice], [Allocated(1, 1, 3000, START)])
    assert plan.unbilling.credits == {1: 7500}
    assert plan.refunds == {1: 2500}


def test_refund_newest_payment_first_then_newest_invoice() -> None:
    invoices = [
        _inv(1, date(2026, 1, 1), 5000, paid=5000),
        _inv(2, date(2026, 4, 1), 5000, paid=5000),
    ]
    paid = [
        Allocated(1, 1, 5000, date(2026, 1, 2)),
        Allocated(2, 2, 5000, date(2026, 4, 2)),
    ]
    plan = unbill(0, 7000, invoices, paid)
    assert plan.take_backs == {2: {2: 5000}, 1: {1: 2000}}


def test_premium_cut_takes_what_is_due_first_then_what_was_paid() -> None:
    invoices = [_inv(1, date(2026, 1, 1), 5000, paid=5000), _inv(2, date(2026, 2, 1), 5000)]
    cut = premium_cut(6000, invoices, [Allocated(4, 1, 5000, START)])
    assert cut.credits == {2: 5000} and cut.take_backs == {4: {1: 1000}}
    assert premium_cut(20000, [], []).credited == 0  # nothing billed: nothing to take
    with pytest.raises(DomainError):
        premium_cut(0, invoices, [])


def test_term_invoice_reads_lines_net_of_credit_notes() -> None:
    lines = [
        {"kind": "premium", "amount": 8333},
        {"kind": "installment_fee", "amount": 200},
        {"kind": "premium_credit", "amount": -5003},
        {"kind": "credit", "amount": -100},
    ]
    inv = term_invoice(3, START, lines, 5003, 100, 0, 3430, True)
    assert (inv.premium, inv.fees) == (3330, 200)


def test_bad_facts_are_refused() -> None:
    with pytest.raises(DomainError):
        settlement(-1, [], [])
    with pytest.raises(DomainError):
        settlement(0, [_inv(1, START, 100)], [Allocated(1, 2, 100, START)])  # not the term's


def test_refund_rules() -> None:
    assert refund_channel("stripe", "card") == "stripe"
    assert refund_channel("manual", "check") == refund_channel("manual", "cash") == "check"
    assert refund_channel("bank_statement", "bank_transfer") == "transfer"
    assert stripe_refund_action("pending", "stripe", "succeeded") == "settle"
    assert stripe_refund_action("succeeded", "stripe", "failed") == "reopen"
    assert stripe_refund_action("pending", "stripe", "canceled") == "fail"
    assert stripe_refund_action("failed", "stripe", "succeeded") is None  # failed is final
    assert stripe_refund_action("pending", "check", "succeeded") is None
    assert stripe_refund_action("succeeded", "stripe", "succeeded") is None
    assert mark_paid_refusal("pending", "check") is None
    assert mark_paid_refusal("failed", "stripe") is None
    for status, channel in (("pending", "stripe"), ("succeeded", "check"), ("cancelled", "check")):
        refusal = mark_paid_refusal(status, channel)
        assert refusal is not None and refusal.kind == "conflict"


# ----------------------------------------------------------------------------- properties


@st.composite
def terms(draw: st.DrawFn) -> tuple[list[TermInvoice], list[Allocated]]:
    """Up to 12 invoices of a term (premium, fees, some paid by up to 3 payments each, some
    written off), and the payments' allocations."""
    invoices: list[TermInvoice] = []
    allocations: list[Allocated] = []
    payment_ids = iter(range(1, 1000))
    for number in range(1, draw(st.integers(0, 12)) + 1):
        premium = draw(st.integers(0, 50000))
        fees = draw(st.integers(0, 2000))
        total = premium + fees
        paid = draw(st.integers(0, total))
        written = draw(st.integers(0, total - paid)) if draw(st.booleans()) else 0
        due = total - paid - written
        status_open = due > 0
        invoices.append(
            TermInvoice(
                number, START + timedelta(days=30 * number), premium, fees, paid, written,
                due, status_open,
            )
        )  # fmt: skip
        left = paid
        while left > 0:
            part = draw(st.integers(1, left))
            received = START + timedelta(days=draw(st.integers(0, 400)))
            allocations.append(Allocated(next(payment_ids), number, part, received))
            left -= part
    return invoices, allocations


@given(term=terms(), earned=st.integers(0, 700000))
def test_settlement_leaves_the_term_billing_what_it_earned(
    term: tuple[list[TermInvoice], list[Allocated]], earned: int
) -> None:
    invoices, allocations = term
    plan = settlement(earned, invoices, allocations)
    billed = sum(i.premium for i in invoices)
    paid = sum(i.premium_paid for i in invoices)
    credits, take_backs = plan.unbilling.credits, plan.unbilling.take_backs
    taken = {i.invoice_id: 0 for i in invoices}
    for by_invoice in take_backs.values():
        for invoice_id, amount in by_invoice.items():
            taken[invoice_id] += amount
    by_id = {i.invoice_id: i for i in invoices}
    # Each part is within what it may take: unpaid premium still due, paid premium, the
    # payment's allocation.
    for invoice_id, amount in credits.items():
        assert 0 < amount <= by_id[invoice_id].creditable
    for invoice_id, amount in taken.items():
        assert 0 <= amount <= by_id[invoice_id].premium_paid
    allocated = {(a.payment_id, a.invoice_id): a.amount for a in allocations}
    for payment_id, by_invoice in take_backs.items():
        for invoice_id, amount in by_invoice.items():
            assert 0 < amount <= allocated[(payment_id, invoice_id)]
    assert plan.refunds == {p: sum(t.values()) for p, t in take_backs.items()}
    if earned >= billed:
        assert plan.final_invoice == earned - billed and not credits and not take_backs
    else:
        assert plan.final_invoice == 0
        # The term now bills the earned premium, but for unpaid premium written off.
        unbilled = sum(credits.values()) + sum(taken.values())
        assert unbilled <= billed - earned
        stuck = sum(max(0, i.premium - i.premium_paid - i.creditable) for i in invoices)
        assert billed - unbilled - earned <= stuck
    # What was paid beyond the earned premium is refunded, to the cent; or it is owed.
    assert sum(plan.refunds.values()) == plan.refund_due == max(0, paid - earned)
    assert plan.balance_due == max(0, earned - paid)
    assert paid - plan.refund_due + plan.balance_due == earned


@given(term=terms(), cut=st.integers(1, 700000))
def test_a_premium_cut_takes_no_more_than_was_billed(
    term: tuple[list[TermInvoice], list[Allocated]], cut: int
) -> None:
    invoices, allocations = term
    done = premium_cut(cut, invoices, allocations)
    assert done.credited + done.taken_back <= cut
    can = sum(i.creditable for i in invoices) + sum(i.premium_paid for i in invoices)
    assert done.credited + done.taken_back == min(cut, can)
    assert done.credited == min(cut, sum(i.creditable for i in invoices))


@given(
    day=st.integers(0, 365),
    method=st.sampled_from(["pro_rata", "short_rate"]),
    premium=st.integers(0, 10**7),
)
def test_settling_on_any_day_splits_the_premium_exactly(
    day: int, method: str, premium: int
) -> None:
    """Paid in full, cancelled on any day of the term: earned + refund is what was paid."""
    on = START + timedelta(days=day)
    earned = cancellation(premium, 0, START, END, on, method).earned_premium
    plan = settlement(earned, [_inv(1, START, premium, paid=premium)],
                      [Allocated(1, 1, premium, START)] if premium else [])  # fmt: skip
    assert plan.earned_premium + plan.refund_due == premium
    assert plan.final_invoice == 0 and plan.balance_due == 0
