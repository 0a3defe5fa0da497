"""Stripe payouts: a paid payout is recorded once, checked against its balance transactions
(payout = charges − refunds − disputes + other − fees) and journaled (bank ← Stripe clearing,
fees); deposit reconciliation then pairs it with the bank line."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.db.hooks import PAYOUT_RECORDED, publish
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.journal import post
from premium_billing.ledger.rules import Posting
from premium_billing.stripe_billing.models import StripePayout

log = logging.getLogger(__name__)
DEFAULTS = Settings()


def payout_totals(balance_transactions: list[dict[str, Any]]) -> dict[str, int]:
    """Charges, refunds, disputes, other adjustments and fees of a payout's balance
    transactions (refunds and disputes as positive amounts taken off); `net` their sum."""
    totals = {"charges": 0, "refunds": 0, "disputes": 0, "other": 0, "fees": 0, "net": 0}
    for tx in balance_transactions:
        kind = str(tx.get("type") or "")
        if kind == "payout":
            continue  # the payout itself
        amount = int(tx.get("amount") or 0)
        fee = int(tx.get("fee") or 0)
        net = int(tx["net"]) if tx.get("net") is not None else amount - fee
        totals["fees"] += fee
        if kind in ("charge", "payment"):
            totals["charges"] += amount
        elif kind in ("refund", "payment_refund"):
            totals["refunds"] -= amount
        elif kind in ("adjustment", "dispute") or kind.startswith("dispute"):
            totals["disputes"] -= amount
        else:
            totals["other"] += amount
        totals["net"] += net
    return totals


def record_payout(
    session: Session,
    *,
    payout_id: str,
    amount: int,
    currency: str,
    arrival_date: date,
    balance_transactions: list[dict[str, Any]],
    settings: Settings | None = None,
) -> None:
    """Record a paid Stripe payout once (a second call changes nothing); flushed, not
    committed. Amounts in minor units; `balance_transactions` as
    [{id, type, amount, fee, net, source}] with type charge, refund, adjustment, payout…"""
    settings = settings or DEFAULTS
    if session.scalar(select(StripePayout.id).where(StripePayout.payout_id == payout_id)):
        return
    currency = currency.upper()
    totals = payout_totals(balance_transactions)
    expected = (
        totals["charges"] - totals["refunds"] - totals["disputes"] + totals["other"]
        - totals["fees"]
    )  # fmt: skip
    flag = None
    if expected != amount or totals["net"] != amount:
        flag = (
            f"balance transactions add up to {expected} (net {totals['net']}), "
            f"the payout is {amount}"
        )
    payout = StripePayout(
        payout_id=payout_id,
        amount=amount,
        currency=currency,
        arrival_date=arrival_date,
        charges=totals["charges"],
        refunds=totals["refunds"],
        disputes=totals["disputes"],
        other=totals["other"],
        fees=totals["fees"],
        status="flagged" if flag else "unmatched",
        flag_reason=flag,
        balance_transactions=[
            {k: tx.get(k) for k in ("id", "type", "amount", "fee", "net", "source")}
            for tx in balance_transactions
        ],
    )
    session.add(payout)
    session.flush()
    fees = totals["fees"]
    entry = post(
        session,
        ledger.PAYOUT_SETTLED,
        arrival_date,
        [
            Posting(ledger.CASH_BANK, currency, amount),
            Posting(ledger.PROCESSING_FEES, currency, fees),
            Posting(ledger.STRIPE_CLEARING, currency, -(amount + fees)),
        ],
        memo=f"Stripe payout {payout_id}",
    )
    payout.entry_id = entry.id
    session.flush()
    if flag:
        log.warning(
            "stripe payout does not add up",
            extra={"event": "payout_flagged", "payout_id": payout_id},
        )
    # Deposit reconciliation pairs it with its bank line (wired by the app's bootstrap).
    publish(session, PAYOUT_RECORDED, payout=payout, settings=settings)
