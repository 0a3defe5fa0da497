"""Posting rules for payments: how money is spread over invoices, whether a posting plan
can post (and why not), when a small remainder is written off, the journal legs of money
moving between a payment and invoices, and which status a payment has. Pure: standard
library and the other pure rule modules only.

All amounts are integers in the currency's minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import NamedTuple, Protocol

from premium_billing.invoicing.rules import OverAllocation, is_payable, within_tolerance
from premium_billing.ledger.rules import (
    PREMIUM_RECEIVABLE,
    Posting,
    holding_account,
)


@dataclass(frozen=True)
class OpenItem:
    """An invoice that can take money: its id, due date (ISO, sortable) and amount due."""

    invoice_id: int
    due_date: str
    amount_due: int


def oldest_first(available: int, items: Sequence[OpenItem]) -> dict[int, int]:
    """Spread `available` over the items, oldest due date first (then lowest id).

    Returns {invoice id: amount}, amounts > 0; their sum is min(available, total due).
    """
    if available < 0:
        raise ValueError("available must not be negative")
    out: dict[int, int] = {}
    left = available
    for item in sorted(items, key=lambda i: (i.due_date, i.invoice_id)):
        if left == 0:
            break
        take = min(left, item.amount_due)
        if take > 0:
            out[item.invoice_id] = take
            left -= take
    return out


class Installment(NamedTuple):
    """An invoice of a policy as the allocation order sees it: the policy, the due date,
    what is due on it now (0: it takes no money: paid, void, written off) and its total (the
    write-off tolerance's percent is of it; 0: what is due stands for it)."""

    invoice_id: int
    policy_id: int
    due_date: date
    amount_due: int
    total: int = 0


def allocation_order(
    requested: Sequence[tuple[int, int]],
    installments: Sequence[Installment],
    order: str = "oldest_first",
    *,
    write_offs: Sequence[tuple[int, int]] = (),
    tolerance: Tolerance | None = None,
) -> list[tuple[int, int]]:
    """Which installments a payment's allocations settle (setting ALLOCATION_ORDER).

    `requested` [(invoice id, amount)]: what a match or a Stripe payment names; amounts for
    one invoice add up. `installments`: the installments of the policies of those invoices,
    as they are now. "oldest_first" (DESIGN: within one policy the oldest open installment
    is settled first, even when the payment names a later one): the amount named on each
    policy's invoices settles that policy's installments with something due, oldest due date
    first (then lowest id); per policy the amount stays what was named. "as_named": the
    allocations as named.

    Returns [(invoice id, amount)] (policies in the order first named, each oldest first;
    amounts > 0), or `requested` as it is when the order is "as_named" or cannot apply: an
    invoice not among `installments`, an amount not above 0, or a policy with less due in all
    than named on it (posting then refuses it with its own reason, naming the field).

    `write_offs` [(invoice id, amount)]: what the tolerance rule writes off the named invoices
    paid as named (a short payment's verdict; `tolerance` given with them). A policy short
    that much as named is as short in this order: the payment settles its installments as if
    it had paid the shortfall too, which is left on the last installment it settles in full,
    for the tolerance rule to write off there (`_short_kept`). Otherwise money moved onto an
    older, partly paid installment would end on a later one far from settled, no write-off,
    and the policy would owe the shortfall: the order would decide what is owed, not only
    which installment pays it."""
    if order == "as_named":
        return list(requested)
    by_id = {i.invoice_id: i for i in installments}
    merged: dict[int, int] = {}
    for invoice_id, amount in requested:
        if amount <= 0 or invoice_id not in by_id:
            return list(requested)
        merged[invoice_id] = merged.get(invoice_id, 0) + amount
    named: dict[int, int] = {}  # policy id -> amount named on its invoices, in order
    for invoice_id, amount in merged.items():
        policy = by_id[invoice_id].policy_id
        named[policy] = named.get(policy, 0) + amount
    out: list[tuple[int, int]] = []
    for policy, amount in named.items():
        items = sorted(
            (i.due_date, i.invoice_id, i.amount_due)
            for i in by_id.values()
            if i.policy_id == policy and i.amount_due > 0
        )  # oldest first, as `oldest_first` spreads
        if sum(due for _, _, due in items) < amount:
            return list(requested)
        spread = _spread(amount, [(invoice_id, due) for _, invoice_id, due in items])
        short = sum(a for i, a in write_offs if i in by_id and by_id[i].policy_id == policy)
        if short > 0 and tolerance is not None:
            spread = _short_kept(spread, short, items, by_id, tolerance)
        out.extend(spread)
    return out


def _spread(amount: int, items: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """`amount` over [(invoice id, due)] in their order: [(invoice id, amount > 0)]."""
    out: list[tuple[int, int]] = []
    for invoice_id, due in items:
        if amount == 0:
            break
        take = min(amount, due)
        if take > 0:
            out.append((invoice_id, take))
            amount -= take
    return out


def _total(installment: Installment) -> int:
    return installment.total or installment.amount_due


def _left(
    spread: Sequence[tuple[int, int]], by_id: Mapping[int, Installment]
) -> dict[int, tuple[int, int]]:
    """{invoice id: (due after the spread, total)} of the invoices it pays."""
    return {i: (by_id[i].amount_due - a, _total(by_id[i])) for i, a in spread}


def _short_kept(
    spread: list[tuple[int, int]],
    short: int,
    items: Sequence[tuple[date, int, int]],
    by_id: Mapping[int, Installment],
    tol: Tolerance,
) -> list[tuple[int, int]]:
    """The policy's spread in oldest-first order that leaves the `short` its named invoices
    were left as named, for the tolerance rule to write off: the named amount plus `short`
    settles the installments oldest first, and `short` is left on the last one it settles
    in full (within tolerance of that one's total, some money on it). `spread` as it is when
    it already leaves that, or when no installment can take it."""
    if sum(a for _, a in tolerance_write_offs(0, _left(spread, by_id), tol)) == short:
        return spread
    covered = _spread(sum(a for _, a in spread) + short, [(i, due) for _, i, due in items])
    settled = [
        n
        for n, (i, a) in enumerate(covered)
        if a == by_id[i].amount_due and a > short and within_tolerance(
            short, _total(by_id[i]), tol.absolute, tol.percent
        )
    ]  # fmt: skip
    if not settled:
        return spread
    at = settled[-1]
    kept = [(i, a - short if n == at else a) for n, (i, a) in enumerate(covered)]
    if tolerance_write_offs(0, _left(kept, by_id), tol) != [(kept[at][0], short)]:
        return spread
    return kept


def check_allocations(
    requested: Sequence[tuple[int, int]],
    unapplied: int,
    amounts_due: Mapping[int, int],
) -> dict[int, int]:
    """Validate [(invoice id, amount)] against the payment and the invoices.

    Amounts for the same invoice add up. Raises OverAllocation naming the field at fault.
    """
    merged: dict[int, int] = {}
    for index, (invoice_id, amount) in enumerate(requested):
        if amount <= 0:
            raise OverAllocation("must be greater than 0", field=f"allocations.{index}.amount")
        merged[invoice_id] = merged.get(invoice_id, 0) + amount
    total = sum(merged.values())
    if total > unapplied:
        raise OverAllocation(
            f"allocations total {total} but the payment has only {unapplied} unapplied",
            field="allocations",
        )
    for index, (invoice_id, _) in enumerate(requested):
        due = amounts_due.get(invoice_id, 0)
        if merged[invoice_id] > due:
            raise OverAllocation(
                f"{merged[invoice_id]} is more than the invoice's amount due of {due}",
                field=f"allocations.{index}.amount",
            )
    return merged


def payment_status(
    amount: int, allocated: int, refunded: int, reversed_amount: int, *, reversed: bool
) -> str:
    """unapplied / partially_applied / applied / refunded / reversed, from the amounts."""
    if reversed:
        return "reversed"
    if refunded > 0 and refunded + reversed_amount == amount:
        return "refunded"
    unapplied = amount - allocated - refunded - reversed_amount
    if allocated == 0:
        return "unapplied"
    if unapplied == 0:
        return "applied"
    return "partially_applied"


# ----------------------------------------------------------------------------- can it post


class PaymentFacts(Protocol):
    """What the rules read of a (locked) payment."""

    @property
    def currency(self) -> str: ...
    @property
    def unapplied(self) -> int: ...
    @property
    def status(self) -> str: ...


class InvoiceFacts(Protocol):
    """What the rules read of a (locked) invoice."""

    @property
    def currency(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def total(self) -> int: ...
    @property
    def due(self) -> int: ...


@dataclass(frozen=True)
class Refusal:
    """Why a plan cannot post. `field`: the input at fault (the API's 422 field errors);
    `kind`: unprocessable (422), conflict (409) or not_found (404)."""

    reason: str
    field: str | None = None
    kind: str = "unprocessable"


@dataclass(frozen=True)
class Tolerance:
    """The write-off tolerance (settings WRITEOFF_TOLERANCE_ABS / _PCT)."""

    absolute: int = 0
    percent: Fraction = Fraction(0)


def refusal(
    requested: Sequence[tuple[int, int]],
    payment: PaymentFacts | None,
    invoices: Mapping[int, InvoiceFacts],
    tolerance: Tolerance,
    *,
    write_off: bool = True,
    expected_write_offs: Sequence[tuple[int, int]] | None = None,
) -> Refusal | None:
    """Why allocating `requested` [(invoice id, amount)] from `payment` to `invoices` (their
    current, locked amounts) cannot post; None when it can. The one validation of every
    road: the API answers a refusal with its status and field, a batch records its reason.

    `expected_write_offs`: the write-offs the plan's author computed ([(invoice id, amount)]);
    they must be exactly what the tolerance rule gives (`tolerance_write_offs`)."""
    if payment is None:
        return Refusal("unknown payment", kind="not_found")
    if payment.status == "reversed":
        return Refusal("the payment is reversed", kind="conflict")
    for index, (invoice_id, _) in enumerate(requested):
        invoice = invoices.get(invoice_id)
        field = f"allocations.{index}.invoice_id"
        if invoice is None:
            return Refusal(f"unknown invoice inv_{invoice_id}", field)
        if invoice.currency != payment.currency:
            return Refusal(
                f"invoice inv_{invoice_id} is in {invoice.currency}, "
                f"the payment in {payment.currency}",
                field,
            )
        if not is_payable(invoice.status):
            return Refusal(f"invoice inv_{invoice_id} is {invoice.status}", field)
    try:
        merged = check_allocations(
            requested, payment.unapplied, {i: invoices[i].due for i, _ in requested}
        )
    except OverAllocation as error:
        return Refusal(error.message, error.field)
    if expected_write_offs is not None:
        unapplied_after = payment.unapplied - sum(merged.values())
        derived = (
            tolerance_write_offs(
                unapplied_after,
                {i: (invoices[i].due - amount, invoices[i].total) for i, amount in merged.items()},
                tolerance,
            )
            if write_off and unapplied_after == 0
            else []
        )
        expected = sorted((int(i), int(a)) for i, a in expected_write_offs)
        if expected != derived:
            for invoice_id, amount in expected:
                if invoice_id not in merged:
                    return Refusal(f"write-off of inv_{invoice_id}, which the plan does not pay")
                left = invoices[invoice_id].due - merged[invoice_id]
                if left != amount or (invoice_id, amount) not in derived:
                    return Refusal(
                        f"invoice inv_{invoice_id} changed: {left} left due, not written off"
                    )
            return Refusal(f"the tolerance rule writes off {derived}, the plan {expected}")
    return None


def write_off_refusal(status: str, due: int) -> Refusal | None:
    """Why an invoice's remainder cannot be written off by hand (None: it can)."""
    if status == "void":
        return Refusal("a void invoice cannot be written off", kind="conflict")
    if due <= 0:
        return Refusal("the invoice has nothing due to write off", kind="conflict")
    return None


def refund_refusal(status: str, amount: int, refundable: int) -> Refusal | None:
    """Why `amount` cannot be refunded from a payment (None: it can)."""
    if status == "reversed":
        return Refusal("a reversed payment cannot be refunded", kind="conflict")
    if amount <= 0:
        return Refusal("must be greater than 0", "amount")
    if amount > refundable:
        return Refusal(
            f"{amount} is more than the {refundable} that can still be refunded", "amount"
        )
    return None


def tolerance_write_offs(
    unapplied_after: int, left: Mapping[int, tuple[int, int]], tolerance: Tolerance
) -> list[tuple[int, int]]:
    """When a posting leaves its payment fully applied (`unapplied_after` 0), each invoice it
    paid that is left with a remainder within tolerance of its total is written off:
    `left` {invoice id: (amount still due, total)} → [(invoice id, amount)], by id. DESIGN:
    a small underpayment (≤ 1.00 or ≤ 1%) may be written off automatically."""
    if unapplied_after != 0:
        return []
    return [
        (invoice_id, due)
        for invoice_id, (due, total) in sorted(left.items())
        if due > 0 and within_tolerance(due, total, tolerance.absolute, tolerance.percent)
    ]


# ----------------------------------------------------------------------------- journal shape


def moved(
    amounts: Mapping[int, int],
    currency: str,
    payment_id: int,
    *,
    unapplied: int,
    holder_before: int | None,
    holder_after: int | None,
) -> list[Posting]:
    """The legs of one payment's money reaching invoices ({invoice id: amount}; negative
    amounts take it back), whatever the road and whether the payer was known before:

    - one holding leg for the payment: the money leaves where it was held (suspense when the
      payer is unknown, else the payer's credit) — all of it (`unapplied`) when the posting
      names or forgets the payer, which then holds the rest in its new place;
    - one receivable leg per invoice, tagged with the invoice, the payment and the payer.

    The legs balance by construction (the holding legs give `applied`, the receivable legs
    take it); zero legs are left out. An entry of many payments is checked whole when it is
    written (`ledger.rules.check_entry`)."""
    applied = sum(amounts.values())
    holder = holder_after if holder_after is not None else holder_before
    legs: list[Posting] = []
    if holder_before == holder_after:
        legs.append(
            Posting(
                holding_account(holder_before), currency, applied,
                payment_id=payment_id, policyholder_id=holder_before,
            )
        )  # fmt: skip
    else:
        legs.append(
            Posting(
                holding_account(holder_before), currency, unapplied,
                payment_id=payment_id, policyholder_id=holder_before,
            )
        )  # fmt: skip
        legs.append(
            Posting(
                holding_account(holder_after), currency, applied - unapplied,
                payment_id=payment_id, policyholder_id=holder_after,
            )
        )  # fmt: skip
    for invoice_id, amount in sorted(amounts.items()):
        legs.append(
            Posting(
                PREMIUM_RECEIVABLE, currency, -amount,
                invoice_id=invoice_id, payment_id=payment_id, policyholder_id=holder,
            )
        )  # fmt: skip
    return [leg for leg in legs if leg.amount != 0]


# ----------------------------------------------------------------------------- refunds


def refund_channel(source: str, method: str) -> str:
    """How a refund is paid back: through Stripe when the money came from Stripe; else by
    check (money that came as a check or cash) or by transfer (bank transfer, ACH, card
    keyed by hand)."""
    if source == "stripe":
        return "stripe"
    return "check" if method in ("check", "cash") else "transfer"


def stripe_refund_action(status: str, channel: str, stripe_status: str) -> str | None:
    """What Stripe's word on one of our refunds (`stripe_status`: pending, succeeded,
    failed, canceled, requires_action) does to it: `settle` (paid out), `reopen` (paid out,
    then failed: owed again), `fail` (never paid out: owed, to be paid another way), or
    None. Only a refund Stripe pays listens; Stripe's failed is final."""
    if channel != "stripe":
        return None
    if stripe_status == "succeeded" and status == "pending":
        return "settle"
    if stripe_status in ("failed", "canceled"):
        if status == "succeeded":
            return "reopen"
        if status == "pending":
            return "fail"
    return None


def mark_paid_refusal(status: str, channel: str) -> Refusal | None:
    """Why a refund cannot be marked paid by check or transfer (None: it can): one Stripe
    pays is marked by its webhook, unless Stripe failed to pay it."""
    if status == "succeeded":
        return Refusal("the refund is already paid", kind="conflict")
    if status == "cancelled":
        return Refusal("the refund was cancelled (a reinstatement took it back)", kind="conflict")
    if status == "pending" and channel == "stripe":
        return Refusal(
            "Stripe pays this refund: its webhook marks it paid (mark it paid only if "
            "Stripe fails it)",
            kind="conflict",
        )
    return None


def applied_by_payment(
    allocations: Iterable[tuple[int, int, int]],
) -> dict[int, dict[int, int]]:
    """What a posting batch applied (its MONEY_MOVED allocations: payment, invoice, amount;
    negative: taken back), as {payment: {invoice: amount applied}}, applications only: the
    receipts and `payment.posted` events name what a payment paid."""
    given: dict[int, dict[int, int]] = {}
    for payment_id, invoice_id, amount in allocations:
        if amount > 0:
            per = given.setdefault(payment_id, {})
            per[invoice_id] = per.get(invoice_id, 0) + amount
    return given
