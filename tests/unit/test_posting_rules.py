"""The posting engine's pure rules: the one validation, the one tolerance rule, the one
journal shape of money reaching invoices, and the one Stripe metadata rule."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from premium_billing.invoicing.rules import PAYABLE_STATUSES, is_payable
from premium_billing.ledger import rules as ledger
from premium_billing.payments.rules import (
    Refusal,
    Tolerance,
    moved,
    refund_refusal,
    refusal,
    tolerance_write_offs,
    write_off_refusal,
)
from premium_billing.stripe_billing.rules import InvoiceSeen, invoice_named, mismatch

TOLERANCE = Tolerance(100, Fraction(1, 100))


@dataclass(frozen=True)
class Pay:
    currency: str = "USD"
    unapplied: int = 10000
    status: str = "unapplied"


@dataclass(frozen=True)
class Inv:
    currency: str = "USD"
    status: str = "open"
    total: int = 10000
    due: int = 10000


def test_the_payable_predicate():
    assert PAYABLE_STATUSES == ("open", "partially_paid")
    assert is_payable("open") and is_payable("partially_paid")
    assert not any(is_payable(s) for s in ("paid", "void", "written_off"))


def test_refusals_name_their_field_and_status():
    invoices = {1: Inv(), 2: Inv(currency="EUR"), 3: Inv(status="void"), 4: Inv(status="paid")}
    assert refusal([(1, 100)], None, invoices, TOLERANCE) == Refusal(
        "unknown payment", kind="not_found"
    )
    assert refusal([(1, 100)], Pay(status="reversed"), invoices, TOLERANCE) == Refusal(
        "the payment is reversed", kind="conflict"
    )
    assert refusal([(1, 1), (9, 1)], Pay(), invoices, TOLERANCE) == Refusal(
        "unknown invoice inv_9", "allocations.1.invoice_id"
    )
    assert refusal([(2, 1)], Pay(), invoices, TOLERANCE) == Refusal(
        "invoice inv_2 is in EUR, the payment in USD", "allocations.0.invoice_id"
    )
    assert refusal([(3, 1)], Pay(), invoices, TOLERANCE).reason == "invoice inv_3 is void"
    assert refusal([(4, 1)], Pay(), invoices, TOLERANCE).reason == "invoice inv_4 is paid"
    assert refusal([(1, 0)], Pay(), invoices, TOLERANCE).field == "allocations.0.amount"
    assert refusal([(1, 10001)], Pay(unapplied=20000), invoices, TOLERANCE).field == (
        "allocations.0.amount"
    )
    assert refusal([(1, 6000), (1, 4001)], Pay(unapplied=20000), invoices, TOLERANCE).field == (
        "allocations.0.amount"
    )  # two lines for one invoice add up
    assert refusal([(1, 5000)], Pay(unapplied=4999), invoices, TOLERANCE).field == "allocations"
    assert refusal([(1, 10000)], Pay(), invoices, TOLERANCE) is None


def test_expected_write_offs_must_be_what_the_rule_gives():
    invoices = {1: Inv()}
    # Fully applied, 50 left: the rule writes off 50.
    assert refusal([(1, 9950)], Pay(unapplied=9950), invoices, TOLERANCE,
                   expected_write_offs=[(1, 50)]) is None  # fmt: skip
    assert refusal([(1, 9950)], Pay(unapplied=9950), invoices, TOLERANCE,
                   expected_write_offs=[]).reason.startswith("the tolerance rule")  # fmt: skip
    # Money left on the payment: no write-off.
    assert refusal([(1, 9950)], Pay(unapplied=9960), invoices, TOLERANCE,
                   expected_write_offs=[(1, 50)]).reason == (
        "invoice inv_1 changed: 50 left due, not written off"
    )  # fmt: skip
    assert refusal([(1, 9950)], Pay(unapplied=9950), invoices, TOLERANCE,
                   expected_write_offs=[(2, 50)]).reason == (
        "write-off of inv_2, which the plan does not pay"
    )  # fmt: skip


def test_tolerance_write_offs_when_the_payment_is_fully_applied():
    left = {1: (50, 10000), 2: (400, 50000), 3: (200, 5000), 4: (0, 100)}
    assert tolerance_write_offs(0, left, TOLERANCE) == [(1, 50), (2, 400)]
    assert tolerance_write_offs(1, left, TOLERANCE) == []


def test_other_refusals():
    assert write_off_refusal("void", 100).kind == "conflict"
    assert write_off_refusal("paid", 0).kind == "conflict"
    assert write_off_refusal("partially_paid", 1) is None
    assert refund_refusal("reversed", 1, 10).kind == "conflict"
    assert refund_refusal("applied", 0, 10).field == "amount"
    assert refund_refusal("applied", 11, 10).field == "amount"
    assert refund_refusal("applied", 10, 10) is None


def _key(leg: ledger.Posting) -> tuple[str, int, int]:
    return (leg.account, leg.invoice_id or 0, leg.amount)


amounts = st.dictionaries(st.integers(1, 9), st.integers(1, 10**6), min_size=1, max_size=4)


@given(amounts=amounts, rest=st.integers(0, 10**6))
def test_one_journal_shape_whether_the_payer_was_known(amounts, rest):
    unapplied = sum(amounts.values()) + rest
    named = moved(amounts, "USD", 7, unapplied=unapplied, holder_before=None, holder_after=3)
    assert sorted(named, key=_key) == sorted(
        ledger.matched(unapplied, amounts, "USD", 7, 3), key=_key
    )
    known = moved(amounts, "USD", 7, unapplied=unapplied, holder_before=3, holder_after=3)
    receivable = [leg for leg in known if leg.account == ledger.PREMIUM_RECEIVABLE]
    assert receivable == [leg for leg in named if leg.account == ledger.PREMIUM_RECEIVABLE]
    (held,) = [leg for leg in known if leg.account != ledger.PREMIUM_RECEIVABLE]
    assert (held.account, held.amount) == (ledger.CUSTOMER_CREDIT, sum(amounts.values()))
    # Taken back, forgetting the payer: the exact mirror of naming it.
    undone = moved(
        {i: -a for i, a in amounts.items()}, "USD", 7,
        unapplied=rest, holder_before=3, holder_after=None,
    )  # fmt: skip
    assert sorted((p.account, p.amount) for p in undone) == sorted(
        (p.account, -p.amount) for p in named
    )
    for legs in (named, known, undone):
        assert ledger.imbalance(legs) == {}
        assert all(p.payment_id == 7 for p in legs)


def test_the_stripe_metadata_rule():
    metadata = {"invoice_id": "inv_12", "invoice_number": "INV-1"}
    assert invoice_named(metadata) == 12
    assert invoice_named({"invoice_id": "inv_012"}) is None
    assert invoice_named(None) is None
    ok = InvoiceSeen("USD", "open", 4800)
    assert mismatch(metadata, 4800, "USD", ok) is None
    assert mismatch(metadata, 4800, "USD", None) == "unknown invoice"
    assert mismatch({}, 4800, "USD", None) == "no invoice in the metadata"
    assert mismatch(metadata, 4800, "EUR", ok) == "currency EUR, the invoice is in USD"
    assert mismatch(metadata, 4800, "USD", InvoiceSeen("USD", "paid", 0)) == "the invoice is paid"
    assert mismatch(metadata, 4700, "USD", ok) == "amount 4700, the invoice has 4800 due"
