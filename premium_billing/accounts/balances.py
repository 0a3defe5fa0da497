"""Policyholder account balances."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.payments.models import Payment


def account_balances(session: Session, policyholder_id: int) -> tuple[int, int]:
    """(amount due, credit balance) in minor units: what the policyholder's open invoices
    still ask for, and their payments' money not allocated to any invoice (refunded and
    reversed money excluded). Both are journal-derivable (`ledger check` compares them)."""
    return balances_of(session, [policyholder_id])[policyholder_id]


def balances_of(session: Session, policyholder_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """`account_balances` of each policyholder, in two queries whatever their number."""
    ids = sorted(set(policyholder_ids))
    out = dict.fromkeys(ids, (0, 0))
    if not ids:
        return out
    due = session.execute(
        select(Invoice.policyholder_id, func.sum(Invoice.amount_due))
        .where(Invoice.policyholder_id.in_(ids), Invoice.status.in_(PAYABLE_STATUSES))
        .group_by(Invoice.policyholder_id)
    ).all()
    credit = session.execute(
        select(Payment.policyholder_id, func.sum(Payment.amount_unapplied))
        .where(Payment.policyholder_id.in_(ids), Payment.amount_unapplied > 0)
        .group_by(Payment.policyholder_id)
    ).all()
    dues = {int(h): int(a or 0) for h, a in due}
    credits = {int(h): int(a or 0) for h, a in credit}
    return {h: (dues.get(h, 0), credits.get(h, 0)) for h in ids}
