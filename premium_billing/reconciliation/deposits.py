"""Stripe payouts ↔ bank deposits.

`record_payout` is what the `payout.paid` webhook handler calls: it checks that the payout's
balance transactions add up (charges − refunds − disputes − fees = payout amount; otherwise
the payout is `flagged`), journals the move from Stripe clearing to the bank and the fees
(processing_fees), and matches the bank credit for it: same currency and amount, booked
within DEPOSIT_WINDOW_DAYS of the arrival date, its text naming Stripe or the payout id
preferred. The statement import calls `match_deposits` for deposits that arrive later.

Refunds and disputes leave the clearing account when they happen (their own entries), so
the payout entry moves what is left: clearing −(amount + fees), bank +amount, fees +fees.
The caller owns the transaction: nothing here commits.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.reconciliation.models import BankLine
from premium_billing.stripe_billing.models import StripePayout

log = logging.getLogger(__name__)

_DEFAULTS = Settings()


def match_payout(session: Session, payout: StripePayout, settings: Settings) -> bool:
    """Pair a payout with its bank deposit line (same amount and currency, within the
    deposit window, the line naming the payout first). The `payout_recorded` handler."""
    window = timedelta(days=settings.deposit_window_days)
    claimed = select(StripePayout.bank_line_id).where(StripePayout.bank_line_id.is_not(None))
    candidates = session.scalars(
        select(BankLine)
        .where(
            BankLine.amount == payout.amount,
            BankLine.currency == payout.currency,
            BankLine.kind == "payout_deposit",
            BankLine.booking_date.between(
                payout.arrival_date - window, payout.arrival_date + window
            ),
            BankLine.id.not_in(claimed),
        )
        .order_by(BankLine.id)
    ).all()
    if not candidates:
        return False

    def rank(line: BankLine) -> tuple[int, int, int]:
        text = f"{line.payer_name or ''} {line.reference or ''}".upper()
        names_payout = payout.payout_id.upper() in text
        return (
            0 if names_payout else 1,  # the trace / payout id first
            abs((line.booking_date - payout.arrival_date).days),
            line.id,
        )

    best = min(candidates, key=rank)
    payout.bank_line_id = best.id
    if payout.status != "flagged":
        payout.status = "matched"
    session.flush()
    return True


def match_deposits(session: Session, settings: Settings | None = None) -> int:
    """Match the payouts still waiting for their bank deposit. Returns how many matched."""
    settings = settings or _DEFAULTS
    waiting = session.scalars(
        select(StripePayout)
        .where(StripePayout.bank_line_id.is_(None))
        .order_by(StripePayout.arrival_date, StripePayout.id)
    ).all()
    if not waiting:
        return 0
    return sum(match_payout(session, payout, settings) for payout in waiting)


def day_report(session: Session, day: date) -> dict[str, Any]:
    """The reconciliation of one day: deposits matched to payouts (arrival that day),
    payouts still unmatched (arrived by then), bank lines booked that day nothing explains."""
    from premium_billing.reconciliation.imports import unexplained_on

    matched = session.execute(
        select(StripePayout, BankLine)
        .join(BankLine, BankLine.id == StripePayout.bank_line_id)
        .where(StripePayout.arrival_date == day)
        .order_by(StripePayout.id)
    ).all()
    unmatched = session.scalars(
        select(StripePayout)
        .where(StripePayout.bank_line_id.is_(None), StripePayout.arrival_date <= day)
        .order_by(StripePayout.arrival_date, StripePayout.id)
    ).all()
    flagged = session.scalar(
        select(func.count())
        .select_from(StripePayout)
        .where(StripePayout.status == "flagged", StripePayout.arrival_date == day)
    )
    return {
        "date": day,
        "deposits_matched": [
            {"payout": _payout_out(p), "bank_line": _line_out(line)} for p, line in matched
        ],
        "payouts_unmatched": [_payout_out(p) for p in unmatched],
        "bank_lines_unexplained": [_line_out(line) for line in unexplained_on(session, day)],
        "payouts_flagged": int(flagged or 0),
    }


def _payout_out(p: StripePayout) -> dict[str, Any]:
    return {
        "payout_id": p.payout_id,
        "amount": p.amount,
        "currency": p.currency,
        "arrival_date": p.arrival_date,
        "charges": p.charges,
        "refunds": p.refunds,
        "disputes": p.disputes,
        "fees": p.fees,
        "status": p.status,
        "flag_reason": p.flag_reason,
    }


def _line_out(line: BankLine) -> dict[str, Any]:
    return {
        "id": line.id,
        "statement_id": line.statement_id,
        "booking_date": line.booking_date,
        "amount": line.amount,
        "currency": line.currency,
        "payer_name": line.payer_name,
        "reference": line.reference,
        "bank_reference": line.bank_reference,
        "kind": line.kind,
    }
