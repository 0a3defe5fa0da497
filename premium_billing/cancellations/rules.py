"""What a cancellation (or a lapse) settles, and how a premium cut is taken off what was
billed. Pure: standard library and the pure rules only; amounts in minor units.

A term's premium is billed on its invoices (their premium, adjustment and cancellation
lines, net of the credit notes taken off them). Fees are earned when billed, and what an
invoice was paid goes to its fees first, the rest to its premium (so a credit note never
takes a fee off, and a refund never gives a fee back).

Settling a term cancelled with `earned` premium (`settlement`):

- earned but unbilled premium (earned > billed) becomes a final invoice, at once;
- billed but unearned premium (billed > earned) is taken off what the open invoices still
  ask for, newest due date first (a credit note: the invoice's amount due falls);
- what was paid beyond the earned premium is taken back from the invoices it paid (and
  credited off them) and refunded, payment by payment, newest payment first: each payment
  is paid back the way it came (see `payments.rules.refund_channel`).

A premium cut with nothing left to bill (`premium_cut`) is taken off the same way: off what
is still due first, then off premium already paid, which becomes the payer's credit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

from premium_billing.errors import DomainError

# The invoice lines that bill premium (a credit note's `premium_credit` line is the credit
# itself: the invoice's amount credited) and those that bill fees.
PREMIUM_KINDS = ("premium", "adjustment", "cancellation")
FEE_KINDS = ("installment_fee", "policy_fee")


@dataclass(frozen=True)
class TermInvoice:
    """An invoice of the term (not void), as the settlement reads it.

    `premium`: the premium it bills, net of credit notes; `fees`: the fees it bills;
    `paid`, `written_off`, `due`: its amounts; `payable`: open or partially paid."""

    invoice_id: int
    due_date: date
    premium: int
    fees: int
    paid: int
    written_off: int
    due: int
    payable: bool

    @property
    def premium_paid(self) -> int:
        """What was paid of its premium: the payments pay its fees first."""
        return min(self.premium, max(0, self.paid - self.fees))

    @property
    def creditable(self) -> int:
        """Unpaid premium a credit note may take off what it still asks for."""
        if not self.payable:
            return 0
        return max(0, min(self.due, self.premium - self.premium_paid))


@dataclass(frozen=True)
class Allocated:
    """A payment's net allocation to an invoice of the term (> 0)."""

    payment_id: int
    invoice_id: int
    amount: int
    received_on: date


@dataclass(frozen=True)
class Unbilling:
    """Premium taken off the term's invoices. `credits`: {invoice: amount} off what is still
    due; `take_backs`: {payment: {invoice: amount}} paid premium taken back from the
    invoices (each then credited off its invoice by that amount), newest payment first."""

    credits: dict[int, int] = field(default_factory=dict)
    take_backs: dict[int, dict[int, int]] = field(default_factory=dict)

    @property
    def credited(self) -> int:
        return sum(self.credits.values())

    @property
    def taken_back(self) -> int:
        return sum(a for by_invoice in self.take_backs.values() for a in by_invoice.values())


def _newest_first(invoices: Sequence[TermInvoice]) -> list[TermInvoice]:
    return sorted(invoices, key=lambda i: (i.due_date, i.invoice_id), reverse=True)


def _check(invoices: Sequence[TermInvoice], allocations: Sequence[Allocated]) -> None:
    for inv in invoices:
        if min(inv.premium, inv.fees, inv.paid, inv.written_off, inv.due) < 0:
            raise DomainError(f"invoice inv_{inv.invoice_id} has a negative amount")
    known = {inv.invoice_id for inv in invoices}
    for allocation in allocations:
        if allocation.amount <= 0:
            raise DomainError(f"allocation of pay_{allocation.payment_id} is not positive")
        if allocation.invoice_id not in known:
            raise DomainError(f"allocation to inv_{allocation.invoice_id}, not of the term")


def unbill(
    off_due: int,
    off_paid: int,
    invoices: Sequence[TermInvoice],
    allocations: Sequence[Allocated],
) -> Unbilling:
    """Take at most `off_due` of premium off what the invoices still ask for (newest due date
    first), and at most `off_paid` off premium already paid (newest payment first; within a
    payment, its newest invoice first), never more than an invoice's unpaid or paid
    premium, nor a payment's allocation."""
    if off_due < 0 or off_paid < 0:
        raise DomainError("premium to take off must not be negative")
    _check(invoices, allocations)
    credits: dict[int, int] = {}
    left = off_due
    for inv in _newest_first(invoices):
        take = min(left, inv.creditable)
        if take > 0:
            credits[inv.invoice_id] = take
            left -= take
    paid_left = {inv.invoice_id: inv.premium_paid for inv in invoices}
    order = {inv.invoice_id: rank for rank, inv in enumerate(_newest_first(invoices))}
    by_payment: dict[int, list[Allocated]] = {}
    for allocation in allocations:
        by_payment.setdefault(allocation.payment_id, []).append(allocation)
    newest = sorted(
        by_payment, key=lambda p: (max(a.received_on for a in by_payment[p]), p), reverse=True
    )
    take_backs: dict[int, dict[int, int]] = {}
    left = off_paid
    for payment_id in newest:
        for allocation in sorted(by_payment[payment_id], key=lambda a: order[a.invoice_id]):
            take = min(left, allocation.amount, paid_left[allocation.invoice_id])
            if take > 0:
                taken = take_backs.setdefault(payment_id, {})
                taken[allocation.invoice_id] = taken.get(allocation.invoice_id, 0) + take
                paid_left[allocation.invoice_id] -= take
                left -= take
    return Unbilling(credits, take_backs)


@dataclass(frozen=True)
class Settlement:
    """What cancelling a term settles (see the module doc). `refunds`: {payment: amount}
    owed back to each payment, the sum of its take-backs."""

    earned_premium: int
    billed_premium: int
    paid_premium: int
    final_invoice: int
    unbilling: Unbilling
    refund_due: int
    balance_due: int

    @property
    def refunds(self) -> dict[int, int]:
        return {p: sum(t.values()) for p, t in self.unbilling.take_backs.items()}


def settlement(
    earned: int, invoices: Sequence[TermInvoice], allocations: Sequence[Allocated]
) -> Settlement:
    """Settle a term whose cover earned `earned` premium, from its invoices (not void) and
    the payments' allocations to them. Earned but unbilled: a final invoice; billed but
    unearned: credited off what is still due; paid beyond earned: taken back and refunded.
    After it the term bills `earned` (plus any unpaid premium written off, which stays
    written off), and refund_due + what the invoices still ask for of premium settle the
    difference between earned and paid."""
    if earned < 0:
        raise DomainError("earned premium must not be negative", field="earned_premium")
    _check(invoices, allocations)
    billed = sum(inv.premium for inv in invoices)
    paid = sum(inv.premium_paid for inv in invoices)
    refund_due = max(0, paid - earned)
    if earned >= billed:
        unbilling = Unbilling()
        final = earned - billed
    else:
        unbilling = unbill(billed - earned, refund_due, invoices, allocations)
        final = 0
    return Settlement(
        earned_premium=earned,
        billed_premium=billed,
        paid_premium=paid,
        final_invoice=final,
        unbilling=unbilling,
        refund_due=refund_due,
        balance_due=max(0, earned - paid),
    )


def premium_cut(
    cut: int, invoices: Sequence[TermInvoice], allocations: Sequence[Allocated]
) -> Unbilling:
    """Take a premium cut (> 0) with nothing left to bill off the term: off what the open
    invoices still ask for first, then off premium already paid (the payer's credit). What
    neither can take (nothing billed yet) is left: `cut - credited - taken_back`."""
    if cut <= 0:
        raise DomainError("a premium cut must be greater than 0", field="delta_amount")
    _check(invoices, allocations)
    open_part = min(cut, sum(inv.creditable for inv in invoices))
    paid_part = min(cut - open_part, sum(inv.premium_paid for inv in invoices))
    return unbill(open_part, paid_part, invoices, allocations)


def term_invoice(
    invoice_id: int,
    due_date: date,
    lines: Sequence[dict[str, object]],
    credited: int,
    paid: int,
    written_off: int,
    due: int,
    payable: bool,
) -> TermInvoice:
    """A TermInvoice from an invoice's lines (premium and fee kinds) and amounts."""

    def amount(line: dict[str, object]) -> int:
        value = line.get("amount")
        if not isinstance(value, int):
            raise DomainError(f"invoice inv_{invoice_id} has a line without an amount")
        return value

    premium = sum(amount(line) for line in lines if line.get("kind") in PREMIUM_KINDS)
    fees = sum(amount(line) for line in lines if line.get("kind") in FEE_KINDS)
    return TermInvoice(
        invoice_id=invoice_id,
        due_date=due_date,
        premium=max(0, premium - credited),
        fees=fees,
        paid=paid,
        written_off=written_off,
        due=due,
        payable=payable,
    )
