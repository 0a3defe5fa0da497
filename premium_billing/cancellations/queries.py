"""What the policy rules need to know about money received."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.policies.models import Installment

PREMIUM_KINDS = ("premium", "adjustment")
FEE_KINDS = ("installment_fee", "policy_fee")


def amount_paid_on_term(session: Session, term_id: int) -> int:
    """Premium received for the term's installments, in minor units.

    Per invoice, what was paid (allocations, credit included) goes to its fees first, the
    rest to premium, at most the invoice's premium: fees are earned when billed."""
    invoices = session.execute(
        select(Invoice.amount_paid, Invoice.lines)
        .join(Installment, Installment.id == Invoice.installment_id)
        .where(Installment.term_id == term_id, Invoice.amount_paid > 0)
    ).all()
    received = 0
    for paid, lines in invoices:
        premium = sum(int(line["amount"]) for line in lines or [] if line["kind"] in PREMIUM_KINDS)
        fees = sum(int(line["amount"]) for line in lines or [] if line["kind"] in FEE_KINDS)
        received += max(0, min(premium, int(paid) - fees))
    return received


def arrears_on(session: Session, policy_id: int, on: date) -> int:
    """Amount invoiced, due before `on` and still unpaid, in minor units."""
    total = session.scalar(
        select(func.coalesce(func.sum(Invoice.amount_due), 0)).where(
            Invoice.policy_id == policy_id,
            Invoice.due_date < on,
            Invoice.status.in_(PAYABLE_STATUSES),
        )
    )
    return int(total or 0)
