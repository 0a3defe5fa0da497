"""Stripe posting rules: whether a succeeded PaymentIntent pays the invoice its metadata
names. Pure: standard library and the invoicing rules only. The inline webhook and the
batched drain both decide with `mismatch`, so a payment's outcome does not depend on the
road its event took."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from premium_billing.invoicing.rules import is_payable

_PREFIX = {
    "invoice": "inv", "policy": "pol", "policyholder": "ph", "payment": "pay", "refund": "re",
}  # fmt: skip


def format_id(kind: str, number: int | None) -> str | None:
    """The public id ('inv_12') Stripe metadata carries (the API's format)."""
    return None if number is None else f"{_PREFIX[kind]}_{number}"


def parse_id(kind: str, text: object) -> int | None:
    prefix = _PREFIX[kind] + "_"
    if not isinstance(text, str) or not text.startswith(prefix):
        return None
    digits = text[len(prefix) :]
    return int(digits) if digits.isdigit() and not digits.startswith("0") else None


def invoice_named(metadata: Mapping[str, Any] | None) -> int | None:
    """The invoice id the metadata names (`invoice_id`: 'inv_12'), if any."""
    if not metadata:
        return None
    return parse_id("invoice", metadata.get("invoice_id"))


# Pay everything overdue: one Checkout for several invoices, named in one metadata value
# (`invoice_ids`: 'inv_1,inv_2'); Stripe keeps at most 500 characters a value.
MAX_INVOICES_NAMED = 30
INVOICE_LIST_KEY = "invoice_ids"


def invoice_list(invoice_ids: Sequence[int]) -> str:
    """The metadata value naming several invoices: 'inv_1,inv_2' (at most
    MAX_INVOICES_NAMED; each at most 18 characters, so within Stripe's 500)."""
    if not 0 < len(invoice_ids) <= MAX_INVOICES_NAMED:
        raise ValueError(f"a checkout names 1 to {MAX_INVOICES_NAMED} invoices")
    return ",".join(f"inv_{int(i)}" for i in invoice_ids)


def invoices_named(metadata: Mapping[str, Any] | None) -> list[int] | None:
    """The invoices a Pay-everything-overdue payment names (`invoice_ids`), in the order
    named, or None when the metadata has no such list. An unreadable or repeated id makes
    the list empty (nothing can be applied: the payment waits in suspense)."""
    if not metadata or INVOICE_LIST_KEY not in metadata:
        return None
    text = metadata.get(INVOICE_LIST_KEY)
    if not isinstance(text, str):
        return []
    ids = [parse_id("invoice", part.strip()) for part in text.split(",")]
    if not ids or None in ids or len(set(ids)) != len(ids):
        return []
    return [i for i in ids if i is not None]


@dataclass(frozen=True)
class InvoiceSeen:
    """What the rule reads of the (locked) invoice the metadata names; `total`: None when
    not known (then taken as `amount_due`)."""

    currency: str
    status: str
    amount_due: int
    total: int | None = None


def mismatch(
    metadata: Mapping[str, Any],
    amount: int,
    currency: str,
    invoice: InvoiceSeen | None,
    policy_due: int | None = None,
) -> str | None:
    """Why a succeeded PaymentIntent of `amount` `currency` cannot be applied to the invoice
    its metadata names (None: it can): the invoice must exist, be in the same currency, be
    payable and have exactly `amount` due. Anything else waits in suspense for a person.

    `policy_due` (allocation order "oldest_first": the payment settles the oldest open
    installments of the invoice's policy): what that policy has due in all now. Then the
    invoice must exist, be in the same currency and not be void, and `amount` must be at
    least what the invoice has due, at most its total and at most `policy_due`: an
    installment an earlier payment naming another one already settled (paid, or less due)
    lets its payment settle the policy's next installments; a short or an excess payment
    still waits."""
    if invoice is None:
        return "unknown invoice" if metadata.get("invoice_id") else "no invoice in the metadata"
    if invoice.currency != currency:
        return f"currency {currency}, the invoice is in {invoice.currency}"
    if policy_due is None or invoice.status == "void":
        if not is_payable(invoice.status):
            return f"the invoice is {invoice.status}"
        if invoice.amount_due != amount:
            return f"amount {amount}, the invoice has {invoice.amount_due} due"
        return None
    total = invoice.amount_due if invoice.total is None else invoice.total
    if amount < invoice.amount_due:
        return f"amount {amount}, the invoice has {invoice.amount_due} due"
    if amount > total:
        return f"amount {amount}, more than the invoice's total of {total}"
    if amount > policy_due:
        if not is_payable(invoice.status):
            return f"the invoice is {invoice.status}"
        return f"amount {amount}, the invoice's policy has {policy_due} due"
    return None


def mismatch_many(
    metadata: Mapping[str, Any],
    amount: int,
    currency: str,
    invoices: Sequence[InvoiceSeen | None],
) -> str | None:
    """Why a succeeded PaymentIntent of `amount` `currency` that names several invoices
    (`invoices_named`, in that order: `invoices`) cannot pay each what it has due (None: it
    can): every invoice must exist, be in the same currency and be payable with something
    due, and `amount` must be exactly what they have due together. Anything else (one paid
    meanwhile by another road, say) waits in suspense for a person."""
    if not invoices:
        return f"unreadable {INVOICE_LIST_KEY} in the metadata"
    for position, invoice in enumerate(invoices):
        if invoice is None:
            return f"unknown invoice (number {position + 1} named)"
        if invoice.currency != currency:
            return f"currency {currency}, an invoice named is in {invoice.currency}"
        if not is_payable(invoice.status) or invoice.amount_due <= 0:
            return f"an invoice named is {invoice.status}, nothing due"
    due = sum(invoice.amount_due for invoice in invoices if invoice is not None)
    if due != amount:
        return f"amount {amount}, the invoices named have {due} due"
    return None


def evidence_of(pi_id: str, charge_id: str | None, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The match evidence recorded on a Stripe payment."""
    return {"payment_intent": pi_id, "charge": charge_id, "metadata": dict(metadata)}


def reference_of(metadata: Mapping[str, Any]) -> str | None:
    """The payment reference a Stripe payment carries: the invoice number(s) (or ids)."""
    reference = (
        metadata.get("invoice_number")
        or metadata.get("invoice_numbers")
        or metadata.get("invoice_id")
        or metadata.get(INVOICE_LIST_KEY)
    )
    return str(reference)[:500] if reference else None


# ----------------------------------------------------------------------------- money moved


def money_received(amount_moved: Any, amount: Any, *, captured: Any = True) -> int | None:
    """What a PaymentIntent (`amount_received`) or a charge (`amount_captured`) says moved,
    in minor units: the documented field as it is, 0 when it says 0. Only when Stripe leaves
    it out (an object from an API version before it) the amount, and 0 for an uncaptured
    charge (`captured: false`: an authorization, no money). None: neither is given."""
    if amount_moved is not None:
        return int(amount_moved)
    if captured is False:
        return 0
    return None if amount is None else int(amount)


# ----------------------------------------------------------------------------- disputes

# An inquiry (a card network's retrieval request, `case_type: inquiry`) withdraws nothing.
INQUIRY_STATUSES = ("warning_needs_response", "warning_under_review", "warning_closed")
# Statuses a dispute ends in; a later event about it never goes back to an open one.
CLOSED_DISPUTE = ("won", "lost", "warning_closed")


@dataclass(frozen=True)
class DisputeMoney:
    """What one dispute event says Stripe did with the disputed funds."""

    withdrawn: bool  # Stripe took the disputed amount from the balance
    reinstated: bool  # and gave it back


def dispute_money(event_type: str, status: str | None) -> DisputeMoney:
    """`charge.dispute.funds_withdrawn`, or any status but the inquiry's `warning_*`, says
    the funds were withdrawn; `charge.dispute.funds_reinstated`, `won` (taken, then given
    back) and `warning_closed` (an inquiry closed: what a reversal took comes back) say
    they were reinstated. A reinstatement implies a withdrawal (whatever order events come
    in); an inquiry says neither."""
    reinstated = event_type == "charge.dispute.funds_reinstated" or status in (
        "won",
        "warning_closed",
    )
    withdrawn = event_type in (
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    ) or (status is not None and status not in INQUIRY_STATUSES)
    return DisputeMoney(withdrawn=withdrawn, reinstated=reinstated)


def dispute_flag(dispute_id: str, disputed: int, payment_amount: int, currency: str) -> str | None:
    """Why a dispute needs a person: it claims more than its payment took in (Stripe
    withdraws the disputed amount; the reversal gives back only the payment)."""
    if disputed <= payment_amount:
        return None
    return (
        f"dispute {dispute_id} is for {disputed} {currency}, more than its payment of "
        f"{payment_amount} {currency}"
    )
