"""Refunds payable: money owed back to payers, until it is paid out.

A refund is owed by the posting engine (`Batch.refund`: a payment's money → refunds
payable), by hand (`refund_payment`, POST /payments/{id}/refunds) or by a cancellation's
settlement. It is paid back the way the money came (`rules.refund_channel`): a Stripe
payment's through Stripe — sent after the commit that owed it (the Stripe feature handles
`REFUNDS_OWED`), and paid out when Stripe's webhook says it succeeded (`stripe_outcome`);
any other by check or transfer, listed (GET /refunds) until finance marks it paid
(`mark_paid`). Paying out is a `refund_paid` entry: refunds payable → Stripe clearing or the
bank. A Stripe refund that fails is owed again (`failed`): finance pays it another way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.db.hooks import REFUNDS_OWED, REFUNDS_SENT, publish
from premium_billing.errors import NotFound, Unprocessable
from premium_billing.ledger import rules as ledger
from premium_billing.payments import rules
from premium_billing.payments.models import Payment, Refund
from premium_billing.payments.posting import (
    Batch,
    finish,
    get_fresh,
    net_allocations,
    raise_refusal,
    take_back_plan,
)

log = logging.getLogger(__name__)

MARK_PAID_METHODS = ("check", "transfer")


def _cash(channel: str) -> str:
    """The asset account a refund paid by `channel` leaves."""
    return ledger.cash_account("stripe" if channel == "stripe" else "manual", channel)


def lock_refund(session: Session, refund_id: int) -> Refund:
    """The refund row, locked (FOR UPDATE; on SQLite the write lock first), read afresh."""
    if session.get_bind().dialect.name != "postgresql":
        session.execute(update(Refund).where(Refund.id == refund_id).values(id=Refund.id))
    stmt = select(Refund).where(Refund.id == refund_id).execution_options(populate_existing=True)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    refund = session.scalar(stmt)
    if refund is None:
        raise NotFound("refund not found")
    return refund


def get_refund(session: Session, refund_id: int) -> Refund:
    refund = session.get(Refund, refund_id)
    if refund is None:
        raise NotFound("refund not found")
    return refund


def owed(session: Session, settings: Settings, refund_ids: list[int]) -> None:
    """After the commit that owed them: Stripe's refunds go to Stripe (see the module doc)."""
    if refund_ids:
        publish(session, REFUNDS_OWED, refund_ids=list(refund_ids), settings=settings)


# ----------------------------------------------------------------------------- by hand


def refund_payment(
    session: Session,
    settings: Settings,
    payment_id: int,
    amount: int,
    *,
    reason: str | None = None,
    on: date | None = None,
) -> Payment:
    """Owe `amount` of a payment back to its payer (POST /payments/{id}/refunds): from its
    unapplied money first (an `overpayment` refund), then from its most recent allocations
    (a `manual` one: those invoices re-open). One transaction; a Stripe payment's refund is
    then sent to Stripe (through the adapter, with a stored idempotency key)."""
    today = on or business_date(settings.timezone)
    batch = Batch(session, settings, on=today, reason="refund")
    pay = batch.lock_payments([payment_id]).get(payment_id)
    if pay is None:
        raise NotFound("payment not found")
    allocations = net_allocations(session, payment_id)
    why = rules.refund_refusal(pay.status, amount, pay.amount - pay.refunded - pay.reversed)
    if why is not None:
        raise_refusal(why)
    kind = "overpayment" if amount <= pay.unapplied else "manual"
    batch.lock_invoices(take_back_plan(allocations, amount - pay.unapplied))
    batch.refund(pay.id, amount, allocations, reason=reason, kind=kind)
    batch.write()
    finish(session, True)
    log.info(
        "payment refunded",
        extra={"event": "payment_refunded", "payment_id": payment_id, "amount": amount},
    )
    owed(session, settings, batch.refund_ids)
    return get_fresh(session, payment_id)


# ----------------------------------------------------------------------------- paid out


def mark_paid(
    session: Session,
    settings: Settings,
    refund_id: int,
    *,
    method: str,
    reference: str | None,
    paid_on: date | None,
) -> Refund:
    """Finance paid a refund by check or transfer (POST /refunds/{id}/mark-paid): refunds
    payable → the bank on `paid_on`. Stripe's refunds are paid by Stripe (409) unless
    Stripe failed them; paid or cancelled ones: 409."""
    if method not in MARK_PAID_METHODS:
        raise Unprocessable(f"method is one of {', '.join(MARK_PAID_METHODS)}", field="method")
    refund = lock_refund(session, refund_id)
    why = rules.mark_paid_refusal(refund.status, refund.channel)
    if why is not None:
        raise_refusal(why)
    on = paid_on or business_date(settings.timezone)
    owed_on = refund.created_at.astimezone(settings.timezone).date()
    if on < owed_on:
        raise Unprocessable(
            f"paid_on is before the refund was owed ({owed_on.isoformat()})", field="paid_on"
        )
    payment = session.get(Payment, refund.payment_id)
    assert payment is not None
    batch = Batch(session, settings, on=on, reason="refund", memo=reference)
    batch.pay_refund(
        refund.id, refund.payment_id, refund.amount, refund.currency, _cash(method),
        payment.policyholder_id, on=on,
        columns={"status": "succeeded", "channel": method, "paid_method": method,
                 "paid_reference": reference, "failure_reason": refund.failure_reason},
    )  # fmt: skip
    batch.write()
    publish(session, REFUNDS_SENT, refund_ids=[refund.id], on=on, settings=settings)
    finish(session, True)
    log.info(
        "refund paid",
        extra={"event": "refund_paid", "refund_id": refund.id, "method": method},
    )
    return get_refund(session, refund.id)


@dataclass(frozen=True)
class StripeWord:
    """What Stripe says of one of our refunds (a webhook's refund object, or its list)."""

    stripe_refund_id: str
    status: str
    failure_reason: str | None = None


def stripe_outcome(
    session: Session, settings: Settings, refund_id: int, word: StripeWord, on: date
) -> str | None:
    """Bring one of our Stripe refunds to what Stripe says (`rules.stripe_refund_action`):
    succeeded → paid out on `on` (refunds payable → Stripe clearing); failed or canceled →
    owed again (`failed`; paid out before: the payout is reversed). Records Stripe's refund
    id. Returns the action taken (None: nothing to do). Flushed, not committed (the
    webhook's transaction)."""
    refund = lock_refund(session, refund_id)
    if refund.stripe_refund_id is None and refund.channel == "stripe":
        refund.stripe_refund_id = word.stripe_refund_id
        session.flush()
    elif refund.stripe_refund_id not in (None, word.stripe_refund_id):
        log.warning(
            "stripe refund of another id",
            extra={"event": "stripe_refund_mismatch", "refund_id": refund.id},
        )
        return None
    action = rules.stripe_refund_action(refund.status, refund.channel, word.status)
    if action is None:
        return None
    payment = session.get(Payment, refund.payment_id)
    assert payment is not None
    batch = Batch(session, settings, on=on, reason="refund", memo=f"stripe {word.status}")
    cash = _cash("stripe")
    if action == "settle":
        batch.pay_refund(
            refund.id, refund.payment_id, refund.amount, refund.currency, cash,
            payment.policyholder_id, on=on,
            columns={"status": "succeeded", "paid_method": "stripe", "failure_reason": None},
        )  # fmt: skip
    elif action == "reopen":
        batch.reopen_refund(
            refund.id, refund.payment_id, refund.amount, refund.currency, cash,
            payment.policyholder_id,
            columns=_failed(word),
        )  # fmt: skip
    else:  # never paid out: owed, nothing to post
        for name, value in _failed(word).items():
            setattr(refund, name, value)
        session.flush()
    batch.write()
    if action == "settle":  # the money reached the payer
        publish(session, REFUNDS_SENT, refund_ids=[refund.id], on=on, settings=settings)
    session.flush()
    session.expire(refund)
    log.info(
        "stripe refund outcome",
        extra={"event": "stripe_refund", "refund_id": refund.id, "action": action},
    )
    return action


def _failed(word: StripeWord) -> dict[str, Any]:
    return {
        "status": "failed",
        "paid_on": None,
        "paid_entry_id": None,
        "paid_method": None,
        "failure_reason": word.failure_reason or f"Stripe: {word.status}",
    }


def fail_unsent(session: Session, refund_id: int, reason: str) -> None:
    """Stripe refused to make the refund (or cannot: no PaymentIntent): it is owed, for
    finance to pay another way (`failed`). Flushed, not committed."""
    refund = lock_refund(session, refund_id)
    if refund.status == "pending":
        refund.status = "failed"
        refund.failure_reason = reason[:2000]
        session.flush()


def record_stripe_id(session: Session, refund_id: int, stripe_refund_id: str) -> None:
    """Stripe's id of the refund it made (its webhook may have recorded it first)."""
    refund = lock_refund(session, refund_id)
    if refund.stripe_refund_id is None:
        refund.stripe_refund_id = stripe_refund_id
        session.flush()
