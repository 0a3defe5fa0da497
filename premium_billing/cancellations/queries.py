"""What the cancellation rules need to know about money received and owed."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from premium_billing.cancellations.settlement import premium_paid_on_term
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES


def amount_paid_on_term(session: Session, term_id: int) -> int:
    """Premium received for the term's invoices, in minor units.

    Per invoice, what was paid (allocations, credit included) goes to its fees first, the
    rest to premium, at most the invoice's premium (net of credit notes): fees are earned
    when billed."""
    return premium_paid_on_term(session, term_id)


def arrears_on(session: Session, policy_id: int, on: date, *, excluding: int | None = None) -> int:
    """Amount invoiced, due before `on` and still unpaid, in minor units (`excluding`: an
    invoice that does not count, e.g. the final invoice a reinstatement takes back)."""
    stmt = select(func.coalesce(func.sum(Invoice.amount_due), 0)).where(
        Invoice.policy_id == policy_id,
        Invoice.due_date < on,
        Invoice.status.in_(PAYABLE_STATUSES),
    )
    if excluding is not None:
        stmt = stmt.where(Invoice.id != excluding)
    return int(session.scalar(stmt) or 0)
