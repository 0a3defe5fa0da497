"""Pure ledger and allocation rules: balanced postings, oldest-first, tolerance, statuses,
the audit hash chain."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from premium_billing.audit.chain import GENESIS, ChainRow, first_break, row_hash
from premium_billing.invoicing.rules import OverAllocation, invoice_status, within_tolerance
from premium_billing.ledger import rules as ledger
from premium_billing.payments.rules import OpenItem, check_allocations, oldest_first, payment_status

amounts = st.integers(min_value=1, max_value=10**12)
ids = st.integers(min_value=1, max_value=10**6)


@given(amount=amounts, payment=ids, holder=st.one_of(st.none(), ids))
def test_every_movement_balances(amount, payment, holder):
    entries = [
        ledger.invoice_issued({"USD": amount, "EUR": amount + 1}),
        ledger.payment_received(amount, "USD", ledger.CASH_BANK, payment, holder),
        ledger.allocated({1: amount, 2: 1}, "USD", payment, holder),
        ledger.allocated({1: -amount}, "USD", payment, holder),
        ledger.refunded(amount, "USD", payment, holder),
        ledger.reversed_payment(amount, "USD", ledger.STRIPE_CLEARING, payment, holder),
        ledger.written_off(amount, "USD", 3, holder),
        ledger.payer_identified(amount, "USD", payment, 9),
        ledger.payer_unidentified(amount, "USD", payment, 9),
    ]
    for legs in entries:
        assert ledger.imbalance(legs) == {}
        assert all(leg.account in ledger.ACCOUNTS for leg in legs)


def test_unbalanced_or_unknown_account_is_refused():
    with pytest.raises(ledger.UnbalancedEntry, match="USD \\+1"):
        ledger.check_entry([ledger.Posting("cash_bank", "USD", 1)])
    with pytest.raises(ledger.UnknownAccount):
        ledger.check_entry(
            [ledger.Posting("petty_cash", "USD", 1), ledger.Posting("cash_bank", "USD", -1)]
        )
    # Balanced per currency, not across currencies.
    with pytest.raises(ledger.UnbalancedEntry):
        ledger.check_entry(
            [ledger.Posting("cash_bank", "USD", 1), ledger.Posting("cash_bank", "EUR", -1)]
        )


def test_holding_account_follows_whether_the_payer_is_known():
    assert ledger.holding_account(None) == ledger.UNAPPLIED_CASH
    assert ledger.holding_account(4) == ledger.CUSTOMER_CREDIT
    assert ledger.cash_account("stripe", "card") == ledger.STRIPE_CLEARING
    assert ledger.cash_account("bank_statement", "ach") == ledger.CASH_BANK


def test_trial_balance_sums_debits_and_credits():
    rows = ledger.trial_balance(
        [
            ("cash_bank", "USD", 500),
            ("unapplied_cash", "USD", -500),
            ("cash_bank", "USD", -200),
            ("refunds_payable", "USD", 200),
        ]
    )
    by_account = {r.account: r for r in rows["USD"]}
    assert (by_account["cash_bank"].debit, by_account["cash_bank"].credit) == (500, 200)
    assert by_account["cash_bank"].balance == 300
    assert sum(r.debit for r in rows["USD"]) == sum(r.credit for r in rows["USD"])


@given(available=st.integers(min_value=0, max_value=10**7), dues=st.lists(amounts, max_size=8))
def test_oldest_first_never_exceeds_and_fills_in_order(available, dues):
    items = [OpenItem(i + 1, f"2026-{(i % 12) + 1:02d}-01", d) for i, d in enumerate(dues)]
    out = oldest_first(available, items)
    assert sum(out.values()) == min(available, sum(dues))
    for item in items:
        assert 0 < out.get(item.invoice_id, 1) <= item.amount_due
    ordered = sorted(items, key=lambda i: (i.due_date, i.invoice_id))
    filled = [out.get(i.invoice_id, 0) for i in ordered]
    # Only the last touched invoice may be partly paid.
    touched = [i for i, amount in zip(ordered, filled, strict=True) if amount]
    assert all(out[i.invoice_id] == i.amount_due for i in touched[:-1])


def test_check_allocations_refuses_what_does_not_fit():
    assert check_allocations([(1, 300), (1, 200), (2, 100)], 600, {1: 500, 2: 100}) == {
        1: 500,
        2: 100,
    }
    with pytest.raises(OverAllocation) as beyond_payment:
        check_allocations([(1, 300), (2, 100)], 399, {1: 500, 2: 100})
    assert beyond_payment.value.field == "allocations"
    with pytest.raises(OverAllocation) as beyond_invoice:
        check_allocations([(2, 50), (1, 501)], 1000, {1: 500, 2: 100})
    assert beyond_invoice.value.field == "allocations.1.amount"
    with pytest.raises(OverAllocation):
        check_allocations([(1, 0)], 1000, {1: 500})


@pytest.mark.parametrize(
    ("remainder", "total", "expected"),
    [(100, 100_00, True), (101, 100_00, False), (500, 500_00, True), (501, 500_00, False),
     (0, 100, False), (1, 1, True)],
)  # fmt: skip
def test_tolerance_is_one_unit_or_one_percent(remainder, total, expected):
    assert within_tolerance(remainder, total, 100, Fraction(1, 100)) is expected


@pytest.mark.parametrize(
    ("total", "paid", "written_off", "expected"),
    [(1000, 0, 0, "open"), (1000, 1, 0, "partially_paid"), (1000, 1000, 0, "paid"),
     (10000, 9950, 50, "paid"), (10000, 5000, 5000, "written_off"),
     (10000, 0, 10000, "written_off"), (10000, 0, 50, "partially_paid"), (0, 0, 0, "paid")],
)  # fmt: skip
def test_invoice_status_from_amounts(total, paid, written_off, expected):
    status = invoice_status(
        total, paid, written_off, tolerance_abs=100, tolerance_pct=Fraction(1, 100)
    )
    assert status == expected
    assert invoice_status(total, paid, written_off, void=True) == "void"


def test_payment_status_from_amounts():
    assert payment_status(100, 0, 0, 0, reversed=False) == "unapplied"
    assert payment_status(100, 40, 0, 0, reversed=False) == "partially_applied"
    assert payment_status(100, 60, 40, 0, reversed=False) == "applied"
    assert payment_status(100, 0, 100, 0, reversed=False) == "refunded"
    assert payment_status(100, 0, 0, 100, reversed=True) == "reversed"


def _chain(n):
    rows, prev = [], GENESIS
    for seq in range(1, n + 1):
        content = {"seq": seq, "action": "create", "after": {"n": seq}}
        digest = row_hash(prev, content)
        rows.append(ChainRow(seq * 10, seq, content, prev, digest))
        prev = digest
    return rows


def test_hash_chain_detects_edit_delete_reorder_and_tail():
    rows = _chain(5)
    assert first_break(rows, head_seq=5, head_hash=rows[-1].hash) is None
    edited = list(rows)
    edited[2] = ChainRow(30, 3, {**rows[2].content, "action": "delete"}, rows[2].prev_hash,
                         rows[2].hash)  # fmt: skip
    assert first_break(edited).row_id == 30
    deleted = rows[:2] + rows[3:]
    assert first_break(deleted).row_id == 40
    swapped = [rows[0], rows[2], rows[1], rows[3], rows[4]]
    assert first_break(swapped).row_id == 30
    assert "head" in first_break(rows[:4], head_seq=5, head_hash=rows[-1].hash).reason
