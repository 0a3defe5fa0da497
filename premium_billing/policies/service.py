"""Policies: creation with their schedule, endorsements and renewal premiums. Each public
function is one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.db.errors import violated
from premium_billing.db.hooks import PREMIUM_CUT, publish
from premium_billing.errors import Conflict, NotFound, OutsideTerm, Unprocessable
from premium_billing.policies.models import (
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
        if session.get_bind().dialect.name == "sqlite":
            # SQLite has no row locks and reads outside a transaction until the first write:
            # take the database's write lock first (waiting for a writer that holds it), so
            # that this read and every later one see the same, current rows (two racing
            # cancellations: the second sees the first's, not half of it).
            table = Policy.__table__
            session.execute(update(table).where(table.c.id == policy_id).values(id=table.c.id))
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


def invoiced(installments: list[Installment]) -> dict[int, int]:
    """installment id → invoice id, for those of `installments` that have an invoice."""
    return {i.id: i.invoice.id for i in installments if i.invoice is not None}


def unbilled(installments: list[Installment]) -> list[Installment]:
    """Scheduled installments that have no invoice yet."""
    return [i for i in installments if i.status == "scheduled" and i.invoice is None]


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
    settings: Settings | None = None,
) -> EndorsementOutcome:
    policy = get_policy(session, policy_id, for_update=True)
    if policy.status in CLOSED_STATUSES:
        raise Conflict(f"a {policy.status} policy cannot be endorsed")
    term = term_containing(policy, effective)
    months = policy.term_months
    new_annual = term_annual_premium(lines)
    old_rate = schedule.term_premium(term.annual_premium, months)
    new_rate = schedule.term_premium(new_annual, months)
    result = proration.endorsement(old_rate, new_rate, term.start_date, term.end_date, effective)
    open_installments = [
        i
        for i in unbilled(term.installments)
        if i.kind == "premium" and schedule.takes_endorsement(i.due_date, effective)
    ]
    amounts = (
        schedule.respread([i.amount for i in open_installments], result.delta_amount)
        if open_installments
        else []
    )
    if open_installments and min(amounts) >= 0:
        for installment, amount in zip(open_installments, amounts, strict=True):
            installment.amount = amount
    adjustment: Installment | None = None
    if not (open_installments and min(amounts) >= 0) and result.delta_amount:
        # Nothing left to spread over: billed (or credited) at once.
        adjustment = Installment(
            policy_id=policy.id,
            number=max(i.number for i in term.installments) + 1,
            due_date=effective,
            amount=result.delta_amount,
            fee=0,
            kind="adjustment",
            status="scheduled",
        )
        term.installments.append(adjustment)
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
    if adjustment is not None and adjustment.amount < 0:
        # A cut is credited off what was billed, in this transaction (the payments feature,
        # wired by the bootstrap); what nothing billed can take stays on the installment.
        publish(
            session,
            PREMIUM_CUT,
            installment_id=adjustment.id,
            endorsement_id=endorsement.id,
            on=effective,
            settings=settings,
        )
    session.commit()
    return EndorsementOutcome(policy=policy, endorsement=endorsement)


def term_containing(policy: Policy, on: date) -> PolicyTerm:
    for term in policy.terms:
        if term.status in ("active", "pending") and term.start_date <= on < term.end_date:
            return term
    term = current_term(policy)
    raise OutsideTerm(
        f"{on.isoformat()} is outside the policy term "
        f"{term.start_date.isoformat()} to {term.end_date.isoformat()}",
        field="effective_date",
    )


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
