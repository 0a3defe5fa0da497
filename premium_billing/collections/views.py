"""What collections shows: a policy's delinquency with its steps (taken, pending, skipped,
scheduled), and the worklist of overdue policies by risk."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from premium_billing.collections import rules
from premium_billing.collections.assess import CHASED, horizon
from premium_billing.collections.models import CollectionStep, Delinquency
from premium_billing.collections.plans import plan_for
from premium_billing.config import Settings
from premium_billing.errors import Unprocessable
from premium_billing.http.ids import parse_id
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.policies.service import get_policy


def delinquency(
    session: Session, settings: Settings, policy_id: int, as_of: date
) -> dict[str, Any]:
    """The policy's state (as the last evaluation stored it), its oldest unpaid due date,
    amount overdue, grace end and lapse day on `as_of`, and its steps: those taken (every
    anchor), and for the current anchor those skipped (stale) and still scheduled."""
    policy = get_policy(session, policy_id)
    row = session.get(Delinquency, policy_id)
    plan = plan_for(settings, policy.product)
    unpaid = [
        rules.Unpaid(due, int(amount))
        for due, amount in session.execute(
            select(Invoice.due_date, Invoice.amount_due).where(
                Invoice.policy_id == policy_id,
                Invoice.status.in_(PAYABLE_STATUSES),
                Invoice.due_date <= horizon(settings, as_of),
            )
        )
    ]
    found = rules.assess(unpaid, plan, as_of, stale_days=settings.collections_stale_days)
    if row is not None:
        state, since = row.state, row.since
    else:
        state, since = ("active" if policy.status in CHASED else policy.status), None
    taken = list(
        session.scalars(
            select(CollectionStep)
            .where(CollectionStep.policy_id == policy_id)
            .order_by(CollectionStep.id)
        )
    )
    steps = [
        {"step": s.step, "days_after_due": s.days_after_due, "on": s.taken_on,
         "status": s.status, "oldest_unpaid_due_date": s.anchor_due_date}
        for s in taken
    ]  # fmt: skip
    chased = policy.status in CHASED and found.anchor is not None
    if chased and found.amount_unpaid >= plan.threshold:
        done = {(s.step, s.days_after_due) for s in taken if s.anchor_due_date == found.anchor}
        for step, after in plan.timeline():
            if (step, after) in done:
                continue
            on = found.anchor + timedelta(days=after)
            late = (as_of - on).days
            stale = rules.is_stale(step, late, settings.collections_stale_days)
            status = "scheduled" if late < 0 else ("skipped" if stale else "due")
            steps.append(
                {"step": step, "days_after_due": after, "on": on, "status": status,
                 "oldest_unpaid_due_date": found.anchor}
            )  # fmt: skip
    return {
        "policy_id": policy_id,
        "state": state,
        "since": since,
        "as_of": as_of,
        "oldest_unpaid_due_date": found.anchor,
        "amount_overdue": found.amount_overdue,
        "currency": policy.currency,
        "grace_starts_on": found.grace_starts_on if chased else None,
        "grace_ends_on": found.grace_ends_on if chased else None,
        "lapse_on": found.grace_ends_on if chased else None,
        "lapsed_on": row.lapsed_on if row is not None else None,
        "steps": steps,
    }


def _days_overdue(session: Session) -> str:
    if session.get_bind().dialect.name == "postgresql":
        return "(CAST(:as_of AS date) - d.anchor_due_date)"
    return "CAST(julianday(:as_of) - julianday(d.anchor_due_date) AS INTEGER)"


def worklist(
    session: Session, as_of: date, args: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool]:
    """Past-due and in-grace policies, riskiest first (amount overdue × days overdue on
    `as_of`, then policy id), a page after `starting_after` (a policy id of the list)."""
    days = _days_overdue(session)
    risk = f"(d.amount_overdue * {days})"
    after = ""
    params: dict[str, Any] = {"as_of": as_of.isoformat(), "limit": args["limit"] + 1}
    cursor = args.get("starting_after")
    if cursor is not None:
        number = parse_id("policy", cursor)
        if number is None:
            raise Unprocessable("Not a valid policy id.", field="starting_after")
        mark = session.execute(
            text(f"SELECT {risk} FROM delinquencies d WHERE d.policy_id = :pid"),
            {**params, "pid": number},
        ).scalar()
        if mark is None:
            raise Unprocessable("Not a policy of the worklist.", field="starting_after")
        after = f"AND ({risk} < :mark OR ({risk} = :mark AND d.policy_id > :pid))"
        params.update(mark=int(mark), pid=number)
    rows = (
        session.execute(
            text(
                f"SELECT d.policy_id, p.policy_number, p.policyholder_id, d.state, "
                f"d.anchor_due_date, {days} AS days_overdue, d.amount_overdue, d.currency, "
                f"{risk} AS risk FROM delinquencies d JOIN policies p ON p.id = d.policy_id "
                "WHERE d.state IN ('past_due','in_grace') AND p.status IN ('past_due','in_grace') "
                f"AND d.anchor_due_date < :as_of {after} "
                f"ORDER BY risk DESC, d.policy_id LIMIT :limit"
            ),
            params,
        )
        .mappings()
        .all()
    )
    page = [dict(r) for r in rows[: args["limit"]]]
    ids = [r["policy_id"] for r in page]
    last: dict[int, tuple[str, Any]] = {}
    if ids:
        latest = (
            select(func.max(CollectionStep.id))
            .where(CollectionStep.policy_id.in_(ids))
            .group_by(CollectionStep.policy_id)
        )
        for policy_id, step, on in session.execute(
            select(CollectionStep.policy_id, CollectionStep.step, CollectionStep.taken_on).where(
                CollectionStep.id.in_(latest)
            )
        ):
            last[policy_id] = (step, on)
    for r in page:
        if isinstance(r["anchor_due_date"], str):
            r["anchor_due_date"] = date.fromisoformat(r["anchor_due_date"])
        r["oldest_unpaid_due_date"] = r.pop("anchor_due_date")
        step = last.get(r["policy_id"])
        r["last_step"] = None if step is None else {"step": step[0], "on": step[1]}
    return page, len(rows) > args["limit"]
