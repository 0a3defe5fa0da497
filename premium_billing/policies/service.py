"""Policies: creation with their schedule, endorsements, cancellations, reinstatements,
renewal premiums. Each public function is one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.cancellations import queries as ledger_hooks
from premium_billing.config import Settings
from premium_billing.db.errors import violated
from premium_billing.errors import Conflict, NotFound, OutsideTerm, Unprocessable
from premium_billing.invoicing.models import Invoice
from premium_billing.policies.models import (
    Cancellation,
    Endorsement,
    Installment,
    Policy,
    Policyholder,
    PolicyTerm,
    PremiumLine,
)
from premium_billing.policies.rules import proration, schedule

CLOSED_STATUSES = ("cancelled", "expired", "lapsed")


def get_policy(session: Session, policy_id: int, for_update: bool = False) -> Policy:
    stmt = select(Policy).where(Policy.id == policy_id)
    if for_update:
        stmt = stmt.with_for_update()
    policy = session.scalar(stmt)
    if policy is None:
        raise NotFound("policy not found")
    return policy


def current_term(policy: Policy, on: date | None = None) -> PolicyTerm:
    """The term in force on `on` (default: the latest term that has started, else the first)."""
    terms = [t for t in policy.terms if t.status != "pending"] or list(policy.terms)
    if on is not None:
        for term in terms:
            if term.start_date <= on < term.end_date:
                return term
    return terms[-1]


def invoiced(session: Session, installments: list[Installment]) -> dict[int, int]:
    """installment id → invoice id, for those of `installments` that have an invoice."""
    ids = [i.id for i in installments if i.id is not None]
    if not ids:
        return {}
    rows = session.execute(
        select(Invoice.installment_id, Invoice.id).where(Invoice.installment_id.in_(ids))
    ).all()
    return {int(a): int(b) for a, b in rows}


def unbilled(session: Session, installments: list[Installment]) -> list[Installment]:
    """Scheduled installments that have no invoice yet."""
    billed = invoiced(session, installments)
    return [i for i in installments if i.status == "scheduled" and i.id not in billed]


def term_annual_premium(lines: list[dict[str, Any]]) -> int:
    return sum(int(line["annual_premium"]) for line in lines)


def _line_rows(lines: list[dict[str, Any]]) -> list[PremiumLine]:
    rows = []
    for position, line in enumerate(lines, start=1):
        pet = line.get("pet") or {}
        rows.append(
            PremiumLine(
                position=position,
                description=line["description"],
                annual_premium=int(line["annual_premium"]),
                pet_name=pet.get("name"),
                pet_species=pet.get("species"),
                pet_breed=pet.get("breed"),
                pet_date_of_birth=pet.get("date_of_birth"),
            )
        )
    return rows


def add_term(
    policy: Policy, term_number: int, start: date, lines: list[dict[str, Any]], status: str
) -> PolicyTerm:
    """A term with its premium lines and its installments (not flushed)."""
    annual = term_annual_premium(lines)
    term_premium = schedule.term_premium(annual, policy.term_months)
    planned = schedule.build_schedule(
        start,
        policy.term_months,
        policy.billing_plan,
        term_premium,
        installment_fee=policy.installment_fee,
        policy_fee=policy.policy_fee if term_number == 1 else 0,
    )
    term = PolicyTerm(
        term_number=term_number,
        start_date=start,
        end_date=schedule.term_end(start, policy.term_months),
        annual_premium=annual,
        term_premium=term_premium,
        status=status,
    )
    term.lines = _line_rows(lines)
    term.installments = [
        Installment(
            number=p.number,
            due_date=p.due_date,
            amount=p.amount,
            fee=p.fee,
            kind="premium",
            status="scheduled",
        )
        for p in planned
    ]
    for installment in term.installments:
        installment.policy_id = policy.id
    policy.terms.append(term)
    return term


def create_policy(session: Session, data: dict[str, Any]) -> Policy:
    if session.get(Policyholder, data["policyholder_id"]) is None:
        raise Unprocessable("unknown policyholder", field="policyholder_id")
    fees = data.get("fees") or {}
    effective: date = data["effective_date"]
    term_months: int = data["term_months"]
    policy = Policy(
        policy_number=data["policy_number"],
        policyholder_id=data["policyholder_id"],
        product=data["product"],
        currency=data["currency"],
        effective_date=effective,
        expiration_date=schedule.term_end(effective, term_months),
        term_months=term_months,
        billing_plan=data["billing_plan"],
        policy_fee=fees.get("policy_fee", 0),
        installment_fee=fees.get("installment_fee", 0),
        autopay=data.get("autopay", False),
        auto_renew=data.get("auto_renew", True),
        status="active",
    )
    session.add(policy)
    try:
        session.flush()
    except IntegrityError as error:
        session.rollback()
        if violated(error, "uq_policies_policy_number", "policies.policy_number"):
            raise Conflict("policy_number already exists", field="policy_number") from None
        raise
    add_term(policy, 1, effective, data["lines"], status="active")
    session.flush()
    session.commit()
    return policy


@dataclass(frozen=True)
class EndorsementOutcome:
    policy: Policy
    endorsement: Endorsement


def endorse(
    session: Session,
    policy_id: int,
    effective: date,
    lines: list[dict[str, Any]],
    reason: str | None,
) -> EndorsementOutcome:
    policy = get_policy(session, policy_id, for_update=True)
    if policy.status in CLOSED_STATUSES:
        raise Conflict(f"a {policy.status} policy cannot be endorsed")
    term = _term_containing(policy, effective)
    months = policy.term_months
    new_annual = term_annual_premium(lines)
    old_rate = schedule.term_premium(term.annual_premium, months)
    new_rate = schedule.term_premium(new_annual, months)
    result = proration.endorsement(old_rate, new_rate, term.start_date, term.end_date, effective)
    open_installments = [i for i in unbilled(session, term.installments) if i.kind == "premium"]
    amounts = (
        schedule.respread([i.amount for i in open_installments], result.delta_amount)
        if open_installments
        else []
    )
    if open_installments and min(amounts) >= 0:
        for installment, amount in zip(open_installments, amounts, strict=True):
            installment.amount = amount
    elif result.delta_amount:
        # Nothing left to spread over: billed (or credited) at once.
        term.installments.append(
            Installment(
                policy_id=policy.id,
                number=max(i.number for i in term.installments) + 1,
                due_date=effective,
                amount=result.delta_amount,
                fee=0,
                kind="adjustment",
                status="scheduled",
            )
        )
    for line in list(term.lines):
        session.delete(line)
    session.flush()
    term.lines = _line_rows(lines)
    endorsement = Endorsement(
        policy_id=policy.id,
        term_id=term.id,
        effective_date=effective,
        old_annual_premium=term.annual_premium,
        new_annual_premium=new_annual,
        delta_amount=result.delta_amount,
        days_remaining=result.days_remaining,
        reason=reason,
    )
    term.annual_premium = new_annual
    term.term_premium += result.delta_amount
    session.add(endorsement)
    session.flush()
    session.commit()
    return EndorsementOutcome(policy=policy, endorsement=endorsement)


def _term_containing(policy: Policy, on: date) -> PolicyTerm:
    for term in policy.terms:
        if term.status in ("active", "pending") and term.start_date <= on < term.end_date:
            return term
    term = current_term(policy)
    raise OutsideTerm(
        f"{on.isoformat()} is outside the policy term "
        f"{term.start_date.isoformat()} to {term.end_date.isoformat()}",
        field="effective_date",
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
    term = _term_containing(policy, effective)
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
    for installment in unbilled(session, term.installments):
        installment.status = "void"
        installment.voided_by_cancellation_id = cancellation.id
    for later in policy.terms:
        if later.term_number > term.term_number:
            later.status = "cancelled"
            for installment in unbilled(session, later.installments):
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


def set_renewal_lines(session: Session, policy_id: int, lines: list[dict[str, Any]]) -> Policy:
    policy = get_policy(session, policy_id, for_update=True)
    if policy.status in CLOSED_STATUSES:
        raise Conflict(f"a {policy.status} policy will not renew")
    policy.renewal_lines = [_jsonable_line(line) for line in lines]
    session.commit()
    return policy


def _jsonable_line(line: dict[str, Any]) -> dict[str, Any]:
    pet = dict(line.get("pet") or {}) or None
    if pet and isinstance(pet.get("date_of_birth"), date):
        pet["date_of_birth"] = pet["date_of_birth"].isoformat()
    return {
        "description": line["description"],
        "annual_premium": line["annual_premium"],
        "pet": pet,
    }
