"""Policyholder account balances."""

from __future__ import annotations

from sqlalchemy.orm import Session


def account_balances(session: Session, policyholder_id: int) -> tuple[int, int]:
    """(amount due, credit balance) in minor units.

    Both come from invoices (issue 3) and payments (issue 4); before those exist, nothing
    can be due or held in credit.
    """
    return 0, 0
