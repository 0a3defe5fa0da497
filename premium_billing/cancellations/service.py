"""Cancellations and reinstatements of policies. Each public function is one transaction."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.cancellations import queries as ledger_hooks
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


def cancel(
    session: Session,
    settings: Settings,
    policy_id: int,
    effective: date,
    method: str,
    reason: str | None,
) -> Cancellation:
    policy = get_policy(session, policy_id, for_update=True)
    if policy.status == "cancelled":
        raise Conflict("the policy is already cancelled")
    if policy.status in CLOSED_STATUSES:
        raise Conflict(f"a {policy.status} policy cannot be cancelled")
    term = term_containing(policy, effective)
    paid = ledger_hooks.amount_paid_on_term(session, term.id)
    rate = schedule.term_premium(term.annual_premium, policy.term_months)
    result = proration.cancellation(
        rate,
        paid,
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
        earned_premium=earned,
        refund_due=max(0, paid - earned),
        balance_due=max(0, earned - paid),
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
    policy.status = "cancelled"
    session.commit()
    return cancellation


def reinstate(session: Session, settings: Settings, policy_id: int, effective: date) -> Policy:
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
    arrears = ledger_hooks.arrears_on(session, policy.id, effective)
    if arrears > 0:
        raise Unprocessable(
            f"arrears of {arrears} (minor units) must be paid before reinstatement",
            field="effective_date",
        )
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
    session.commit()
    return policy
