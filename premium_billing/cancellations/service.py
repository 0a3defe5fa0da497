"""Cancellations, lapses and reinstatements of policies. Each public function is one
transaction: the policy's status and schedule, and the settlement of its account
(`cancellations.settlement`: final invoice, credit notes, refunds owed), commit together;
refunds whose money came from Stripe are sent to Stripe after that commit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.cancellations import queries as ledger_hooks
from premium_billing.cancellations import settlement
from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.db.errors import violated
from premium_billing.errors import Conflict, Unprocessable
from premium_billing.policies.models import Cancellation, Policy
from premium_billing.policies.rules import proration, schedule
from premium_billing.policies.service import (
    CLOSED_STATUSES,
    get_policy,
    term_containing,
    unbilled,
)

KINDS = ("cancellation", "lapse")
# What a caller adds to the transaction before it commits (collections: the state and step).
Then = Callable[[Session], None] | None
# A payment of the term's invoices committed between reading and locking them: settle again.
ATTEMPTS = 5


@dataclass
class Cancelled:
    """A cancellation (or lapse) and what settling the account did."""

    cancellation: Cancellation
    settled: settlement.Settled
    refund_ids: list[int] = field(default_factory=list)


def cancel(
    session: Session,
    settings: Settings,
    policy_id: int,
    effective: date,
    method: str,
    reason: str | None,
    *,
    kind: str = "cancellation",
    then: Then = None,
) -> Cancelled:
    """Cancel the policy's term containing `effective` (pro rata or short rate), void its
    unbilled installments (and later terms'), and settle its account at once: earned but
    unbilled premium is invoiced, billed but unearned premium credited off what is due,
    what was paid beyond the earned premium refunded (through Stripe when it came from
    Stripe, after the commit). `kind` lapse: cancelled for non-payment (status `lapsed`).
    `then` runs in the same transaction, before its commit."""
    if kind not in KINDS:
        raise ValueError(f"kind is one of {KINDS}")
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _cancel(session, settings, policy_id, effective, method, reason, kind, then)
        except settlement.TermChanged:
            session.rollback()
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _cancel(
    session: Session,
    settings: Settings,
    policy_id: int,
    effective: date,
    method: str,
    reason: str | None,
    kind: str,
    then: Then = None,
) -> Cancelled:
    policy = get_policy(session, policy_id, for_update=True)
    if policy.status == "cancelled":
        raise Conflict("the policy is already cancelled")
    if policy.status in CLOSED_STATUSES:
        raise Conflict(f"a {policy.status} policy cannot be cancelled")
    term = term_containing(policy, effective)
    rate = schedule.term_premium(term.annual_premium, policy.term_months)
    result = proration.cancellation(
        rate,
        0,
        term.start_date,
        term.end_date,
        effective,
        method,
        short_rate_penalty=settings.short_rate_penalty,
    )
    # Endorsements changed the rate mid-term: what was charged beyond the current rate is earned.
    earned = max(0, result.earned_premium + term.term_premium - rate)
    cancellation = Cancellation(
        term_id=term.id,
        policy_id=policy.id,
        effective_date=effective,
        method=method,
        reason=reason,
        kind=kind,
        earned_premium=earned,
        refund_due=0,
        balance_due=0,
    )
    session.add(cancellation)
    try:
        session.flush()
    except IntegrityError as error:
        session.rollback()
        if violated(error, "uq_cancellations_standing_term", "cancellations.term_id"):
            raise Conflict("the policy is already cancelled") from None
        raise
    for installment in unbilled(term.installments):
        installment.status = "void"
        installment.voided_by_cancellation_id = cancellation.id
    for later in policy.terms:
        if later.term_number > term.term_number:
            later.status = "cancelled"
            for installment in unbilled(later.installments):
                installment.status = "void"
                installment.voided_by_cancellation_id = cancellation.id
    term.status = "cancelled"
    term.cancelled_on = effective
    policy.status = "lapsed" if kind == "lapse" else "cancelled"
    session.flush()
    settled = settlement.settle(
        session, settings, policy, term, cancellation, on=business_date(settings.timezone)
    )
    if then is not None:
        then(session)
    session.commit()
    settlement.send_refunds(session, settings, settled.refund_ids)
    return Cancelled(cancellation, settled, settled.refund_ids)


def lapse(
    session: Session, settings: Settings, policy_id: int, on: date, *, then: Then = None
) -> Cancelled:
    """Cancel for non-payment on `on` (grace end): pro rata, settled as a cancellation."""
    return cancel(
        session,
        settings,
        policy_id,
        on,
        proration.PRO_RATA,
        "lapse: non-payment",
        kind="lapse",
        then=then,
    )


def reinstate(
    session: Session, settings: Settings, policy_id: int, effective: date, *, then: Then = None
) -> Policy:
    """Reinstate a cancelled or lapsed policy within the window once its arrears are paid
    (the settlement's own final invoice does not count: the reinstatement takes it back).
    The settlement is reversed exactly (`settlement.reverse`) and the voided installments
    restored. `then` runs in the same transaction, before its commit."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _reinstate(session, settings, policy_id, effective, then)
        except settlement.TermChanged:
            session.rollback()
            if attempt == ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def _reinstate(
    session: Session, settings: Settings, policy_id: int, effective: date, then: Then = None
) -> Policy:
    policy = get_policy(session, policy_id, for_update=True)
    if policy.status not in ("cancelled", "lapsed"):
        raise Conflict(
            f"only a cancelled or lapsed policy can be reinstated (it is {policy.status})"
        )
    cancellation = session.scalar(
        select(Cancellation)
        .where(Cancellation.policy_id == policy.id, Cancellation.reinstated_on.is_(None))
        .order_by(Cancellation.id.desc())
    )
    if cancellation is None:
        raise Conflict("the policy has no standing cancellation to reinstate")
    window_end = cancellation.effective_date + timedelta(days=settings.reinstatement_days)
    if not cancellation.effective_date <= effective <= window_end:
        raise Unprocessable(
            f"reinstatement must be between {cancellation.effective_date.isoformat()} and "
            f"{window_end.isoformat()} (the reinstatement window)",
            field="effective_date",
        )
    arrears = ledger_hooks.arrears_on(
        session, policy.id, effective, excluding=cancellation.final_invoice_id
    )
    if arrears > 0:
        raise Unprocessable(
            f"arrears of {arrears} (minor units) must be paid before reinstatement",
            field="effective_date",
        )
    settlement.reverse(session, settings, policy, cancellation, on=business_date(settings.timezone))
    for term in policy.terms:
        for installment in term.installments:
            if installment.voided_by_cancellation_id == cancellation.id:
                installment.status = "scheduled"
                installment.voided_by_cancellation_id = None
        if term.status == "cancelled" and term.id == cancellation.term_id:
            term.status = "active"
            term.cancelled_on = None
        elif term.status == "cancelled" and term.term_number > 1:
            term.status = "pending"
    cancellation.reinstated_on = effective
    policy.status = "active"
    if then is not None:
        session.flush()
        then(session)
    session.commit()
    return policy
