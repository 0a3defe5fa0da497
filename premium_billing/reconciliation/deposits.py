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

import json
import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.reconciliation.models import BankLine
from premium_billing.stripe_billing.models import StripeEvent, StripePaymentState, StripePayout

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
    disputes = session.scalars(
        select(StripePaymentState)
        .where(StripePaymentState.dispute_flagged_on == day)
        .order_by(StripePaymentState.id)
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
        "pending_payouts": pending_payouts(session, day),
        "disputes_flagged": [
            {
                "dispute_id": d.dispute_id,
                "payment_intent_id": d.payment_intent_id,
                "payment_id": d.payment_id,
                "amount": d.dispute_amount,
                "currency": d.currency,
                "status": d.dispute_status,
                "reason": d.dispute_flag,
            }
            for d in disputes
        ],  # fmt: skip
    }


def pending_payouts(session: Session, day: date) -> list[dict[str, Any]]:
    """Payouts Stripe says are paid (arrival by `day`) that are not recorded yet: their
    `payout.paid` event waits in the webhook inbox (queued, failed with its reason and
    retried, or dead after WEBHOOK_MAX_ATTEMPTS), e.g. while Stripe cannot be reached to
    list their balance transactions. Few rows: the payload is read here."""
    recorded = select(StripePayout.payout_id)
    rows = session.execute(
        select(StripeEvent)
        .where(
            StripeEvent.type == "payout.paid",
            StripeEvent.status.in_(("queued", "failed", "dead")),
            StripeEvent.object_id.not_in(recorded),
        )
        .order_by(StripeEvent.id)
    ).scalars()
    pending = []
    for row in rows:
        payout = _payout_of(row.payload)
        arrival = _arrival(payout.get("arrival_date"))
        if arrival is not None and arrival > day:
            continue
        amount = payout.get("amount")
        pending.append(
            {
                "payout_id": row.object_id,
                "event_id": row.event_id,
                "amount": amount if isinstance(amount, int) else None,
                "currency": str(payout.get("currency") or "").upper() or None,
                "arrival_date": arrival,
                "status": row.status,
                "reason": row.last_error,
                "attempts": row.attempts,
                "next_attempt_at": row.next_attempt_at,
            }
        )
    return pending


def _payout_of(payload: str) -> dict[str, Any]:
    try:
        obj = json.loads(payload)["data"]["object"]
    except (ValueError, KeyError, TypeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _arrival(value: Any) -> date | None:
    """Stripe's `arrival_date` (a Unix time at midnight UTC) as the date it names."""
    try:
        return datetime.fromtimestamp(int(value), UTC).date()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


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
