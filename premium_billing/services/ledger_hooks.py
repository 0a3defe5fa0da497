"""What the policy rules need to know about money received.

Invoices (issue 3) and payments (issue 4) are what these read; until those tables exist no
premium can have been paid or be in arrears, so both answer 0.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session


def amount_paid_on_term(session: Session, term_id: int) -> int:
    """Premium received for the term's installments, in minor units."""
    return 0


def arrears_on(session: Session, policy_id: int, on: date) -> int:
    """Amount invoiced, due before `on` and still unpaid, in minor units."""
    return 0
