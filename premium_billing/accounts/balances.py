"""Policyholder account balances."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from premium_billing.invoicing.models import Invoice
from premium_billing.payments.models import Payment

OWING = ("open", "partially_paid")


def account_balances(session: Session, policyholder_id: int) -> tuple[int, int]:
    """(amount due, credit balance) in minor units: what the policyholder's open invoices
    still ask for, and their payments' money not allocated to any invoice (refunded and
    reversed money excluded). Both are journal-derivable (`ledger check` compares them)."""
    due = session.scalar(
        select(func.coalesce(func.sum(Invoice.amount_due), 0)).where(
            Invoice.policyholder_id == policyholder_id, Invoice.status.in_(OWING)
        )
    )
    credit = session.scalar(
        select(func.coalesce(func.sum(Payment.amount_unapplied), 0)).where(
            Payment.policyholder_id == policyholder_id, Payment.amount_unapplied > 0
        )
    )
    return int(due or 0), int(credit or 0)
