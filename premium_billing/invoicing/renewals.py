"""Renewals: the next term of an auto-renew policy, its schedule and first invoice; the
expiry of a policy that does not renew; terms moving from pending to active to expired."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.db.errors import violated
from premium_billing.invoicing import issue as invoicing
from premium_billing.policies.models import Policy, PolicyTerm
from premium_billing.policies.service import add_term

log = logging.getLogger(__name__)

RENEWABLE = ("active", "past_due", "in_grace")


@dataclass
class RenewalStats:
    as_of: date
    renewed: int = 0
    renewal_invoices: int = 0
    expired: int = 0
    terms_started: int = 0
    already_renewed: int = 0
    policies: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "renewed": self.renewed,
            "renewal_invoices": self.renewal_invoices,
            "expired": self.expired,
            "terms_started": self.terms_started,
            "already_renewed": self.already_renewed,
        }


def lines_of(term: PolicyTerm) -> list[dict[str, Any]]:
    """A term's premium lines as create_policy and endorse take them."""
    return [
        {
            "description": line.description,
            "annual_premium": line.annual_premium,
            "pet": {
                "name": line.pet_name,
                "species": line.pet_species,
                "breed": line.pet_breed,
                "date_of_birth": line.pet_date_of_birth,
            }
            if line.pet_name
            else None,
        }
        for line in term.lines
    ]


def _renewal_lines(policy: Policy, term: PolicyTerm) -> list[dict[str, Any]]:
    if not policy.renewal_lines:
        return lines_of(term)
    lines = []
    for line in policy.renewal_lines:
        pet = dict(line.get("pet") or {}) or None
        if pet and isinstance(pet.get("date_of_birth"), str):
            pet["date_of_birth"] = date.fromisoformat(pet["date_of_birth"])
        lines.append({**line, "pet": pet})
    return lines


def run_renewals(
    db: Database,
    as_of: date,
    lead_days: int,
    job_run_id: int | None = None,
    settings: Settings | None = None,
) -> RenewalStats:
    stats = RenewalStats(as_of=as_of)
    horizon = as_of + timedelta(days=lead_days)
    with db.session() as session:
        due = session.scalars(
            select(Policy.id)
            .where(
                Policy.auto_renew.is_(True),
                Policy.status.in_(RENEWABLE),
                # Late runs catch up: any unrenewed term ending by the horizon renews.
                Policy.expiration_date <= horizon,
            )
            .order_by(Policy.id)
        ).all()
    for policy_id in due:
        _renew_one(db, as_of, policy_id, stats, job_run_id, settings)
    _advance_terms(db, as_of, stats)
    return stats


def _renew_one(
    db: Database,
    as_of: date,
    policy_id: int,
    stats: RenewalStats,
    job_run_id: int | None,
    settings: Settings | None,
) -> None:
    with db.session() as session:
        policy = session.scalar(select(Policy).where(Policy.id == policy_id).with_for_update())
        if policy is None or policy.status not in RENEWABLE or not policy.auto_renew:
            return
        last = max(policy.terms, key=lambda t: t.term_number)
        if last.end_date != policy.expiration_date:
            stats.already_renewed += 1
            return
        term = add_term(
            policy,
            last.term_number + 1,
            last.end_date,
            _renewal_lines(policy, last),
            status="pending",
        )
        policy.expiration_date = term.end_date
        policy.renewal_lines = None
        try:
            session.flush()
        except IntegrityError as error:
            # Another process renewed it first: the unique (policy, term number) decided.
            session.rollback()
            if violated(error, "uq_policy_terms_policy_id_term_number", "policy_terms.policy_id"):
                stats.already_renewed += 1
                return
            raise
        first = min(term.installments, key=lambda i: i.number)
        session.commit()
        first_id, first_due = first.id, first.due_date
    stats.renewed += 1
    # The first renewal invoice is issued now, whatever the lead time.
    issued = invoicing.issue_invoices(
        db,
        as_of,
        lead_days=max(0, (first_due - as_of).days),
        job_run_id=job_run_id,
        installment_ids=[first_id],
        settings=settings,
    )
    stats.renewal_invoices += issued.invoices_issued


def _advance_terms(db: Database, as_of: date, stats: RenewalStats) -> None:
    """Start pending terms whose start date has come; end terms whose end has passed;
    expire policies that had no next term."""
    with db.session() as session:
        started = session.execute(
            update(PolicyTerm)
            .where(PolicyTerm.status == "pending", PolicyTerm.start_date <= as_of)
            .values(status="active")
        ).rowcount
        session.execute(
            update(PolicyTerm)
            .where(PolicyTerm.status == "active", PolicyTerm.end_date <= as_of)
            .values(status="expired")
        )
        expired = session.execute(
            update(Policy)
            .where(Policy.status.in_(RENEWABLE), Policy.expiration_date <= as_of)
            .values(status="expired")
        ).rowcount
        session.commit()
    stats.terms_started += int(started or 0)
    stats.expired += int(expired or 0)
