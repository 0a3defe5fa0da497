"""Posting rules for payments: how money is spread over invoices, when a small remainder
is written off, and which status an invoice or a payment has. Pure: standard library only.

All amounts are integers in the currency's minor unit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from premium_billing.invoicing.rules import OverAllocation


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
