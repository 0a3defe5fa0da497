"""The portal's rules: what is overdue, what one "Pay everything overdue" pays, and how
autopay reads to the policyholder. Pure: standard library and pure rules only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from premium_billing.invoicing.rules import is_payable
from premium_billing.stripe_billing.rules import MAX_INVOICES_NAMED


@dataclass(frozen=True)
class OpenInvoice:
    """What the rules read of an invoice shown in the portal."""

    id: int
    currency: str
    status: str
    due_date: date
    amount_due: int


def is_overdue(invoice: OpenInvoice, today: date) -> bool:
    """An invoice is overdue when it is payable, has something due and its due date (a
    business date) is before `today` (the business date)."""
    return is_payable(invoice.status) and invoice.amount_due > 0 and invoice.due_date < today


def days_overdue(due_date: date, today: date) -> int:
    """Whole days past the due date (0 on or before it)."""
    return max((today - due_date).days, 0)


@dataclass(frozen=True)
class OverduePayment:
    """One "Pay everything overdue" Checkout: a currency, the invoices (oldest first) and
    their sum; `left_out`: overdue invoices beyond what one Checkout can name."""

    currency: str
    invoice_ids: tuple[int, ...]
    amount: int
    left_out: int = 0


def overdue_payments(
    invoices: Sequence[OpenInvoice], today: date, limit: int = MAX_INVOICES_NAMED
) -> list[OverduePayment]:
    """Per currency (alphabetical), what one "Pay everything overdue" Checkout pays: the
    overdue invoices oldest due date first (then lowest id), at most `limit` of them (the
    oldest; the next Checkout pays the rest), each for what it has due."""
    by_currency: dict[str, list[OpenInvoice]] = {}
    for invoice in invoices:
        if is_overdue(invoice, today):
            by_currency.setdefault(invoice.currency, []).append(invoice)
    out = []
    for currency in sorted(by_currency):
        ordered = sorted(by_currency[currency], key=lambda i: (i.due_date, i.id))
        taken = ordered[:limit]
        out.append(
            OverduePayment(
                currency,
                tuple(i.id for i in taken),
                sum(i.amount_due for i in taken),
                len(ordered) - len(taken),
            )
        )
    return out


def autopay_state(policies_on: Sequence[bool], card_saved: bool) -> str:
    """How autopay reads: "on" (a live policy has autopay and a card is saved),
    "waiting_for_card" (asked for, no card saved yet), or "off"."""
    if not any(policies_on):
        return "off"
    return "on" if card_saved else "waiting_for_card"


# Policies a policyholder can still switch autopay on or off for (the others bill nothing).
LIVE_STATUSES = ("active", "past_due", "in_grace")
