"""Assessing policies' delinquency, a set at a time, in the caller's transaction.

For a set of policies (a job batch, or the policies a posting batch touched) two reads (the
policies with their delinquency rows; their open invoices), the pure rules per policy
(`collections.rules.assess`), then set-based writes, each one statement whatever the count:
new delinquency rows (`INSERT … ON CONFLICT DO NOTHING`), changed ones (an `UPDATE` that
only wins when the row is still what was read), `policies.status`, the steps taken
(`INSERT … ON CONFLICT DO NOTHING` on the unique step key). Only what a statement wrote is
published (DELINQUENCY_CHANGED, COLLECTION_STEPS_TAKEN) and audited (one row per set), so
two processes assessing the same policy at once publish each transition and step once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, bindparam, select, text
from sqlalchemy.orm import Session

from premium_billing.audit import trail as audit
from premium_billing.collections import rules
from premium_billing.collections.models import Delinquency
from premium_billing.collections.plans import plans
from premium_billing.config import Settings
from premium_billing.db.bulk import any_of, update_rows
from premium_billing.db.hooks import COLLECTION_STEPS_TAKEN, DELINQUENCY_CHANGED, publish
from premium_billing.db.types import utcnow
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.policies.models import Policy

# The policy statuses collections chases (a lapsed, cancelled or expired policy is not).
CHASED = ("active", "past_due", "in_grace")
# Steps that run after their row is written, in a transaction of their own (job.py).
DEFERRED = ("lapse", "late_fee")


@dataclass
class Assessed:
    """What one set's assessment wrote (and published)."""

    transitions: Sequence[dict[str, Any]] = field(default_factory=list)
    steps: Sequence[dict[str, Any]] = field(default_factory=list)
    deferred: Sequence[dict[str, Any]] = field(default_factory=list)  # lapse / late fee rows

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Transitions per state entered, steps taken per step (without reading the rows
        of a batch statement: their ids per kind are known)."""
        return _counts(self.transitions, "to_state"), _counts(self.steps, "step")


def _counts(rows: Sequence[dict[str, Any]], name: str) -> dict[str, int]:
    groups: dict[str, list[int]] | None = getattr(rows, "groups", None)
    counted: dict[str, int] = {}
    if groups is not None:
        for key, ids in groups.items():
            kind = key.rpartition("->")[2]  # a move "from->to" counts for its state
            counted[kind] = counted.get(kind, 0) + len(ids)
        return counted
    for row in rows:
        counted[row[name]] = counted.get(row[name], 0) + 1
    return counted


def horizon(settings: Settings, as_of: date) -> date:
    """The latest due date a run looks at: as far ahead as the earliest step (a reminder
    3 days before the due date)."""
    lead = max(0, *(-d for plan in plans(settings).values() for _s, d in plan.timeline()))
    return as_of + timedelta(days=lead)


def assess_policies(
    session: Session,
    settings: Settings,
    policy_ids: Sequence[int],
    as_of: date,
    *,
    take_steps: bool,
    job_run_id: int | None = None,
) -> Assessed:
    """Re-evaluate these policies on `as_of`; with `take_steps`, take the steps whose day
    has come (the collections job), else only move states (a payment, credit, write-off or
    refund: the next run takes any step). A lapse is never done here: its step row is
    written (pending) for the job to settle."""
    outcome = Assessed()
    if not policy_ids:
        return outcome
    by_plan = plans(settings)
    stale_days = settings.collections_stale_days
    heads = session.execute(
        select(
            Policy.id,
            Policy.product,
            Policy.currency,
            Policy.status,
            Delinquency.state,
            Delinquency.anchor_due_date,
            Delinquency.through,
            Delinquency.amount_overdue,
            Delinquency.next_on,
        )
        .outerjoin(Delinquency, Delinquency.policy_id == Policy.id)
        .where(any_of(session, Policy.id, policy_ids), Policy.status.in_(CHASED))
    ).all()
    if not heads:
        return outcome
    unpaid: dict[int, list[rules.Unpaid]] = {}
    anchors: dict[int, int | None] = {}  # the oldest unpaid installment of each policy
    for policy_id, due, amount, installment_id in session.execute(
        select(Invoice.policy_id, Invoice.due_date, Invoice.amount_due, Invoice.installment_id)
        .where(
            any_of(session, Invoice.policy_id, [h[0] for h in heads]),
            Invoice.status.in_(PAYABLE_STATUSES),
            Invoice.due_date <= horizon(settings, as_of),
            Invoice.amount_due > 0,
        )
        .order_by(Invoice.policy_id, Invoice.due_date, Invoice.id)
    ):
        owed = unpaid.setdefault(policy_id, [])
        if not owed:
            anchors[policy_id] = installment_id
        owed.append(rules.Unpaid(due, amount))
    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    step_rows: list[dict[str, Any]] = []
    facts: dict[int, dict[str, Any]] = {}
    for policy_id, product, currency, status, old, anchor, through, overdue, next_on in heads:
        owed = unpaid.get(policy_id, [])
        found = rules.assess(
            owed,
            by_plan[product],
            as_of,
            stale_days=stale_days,
            through=through if anchor is not None and owed and anchor == owed[0].due_date else None,
        )
        # The lapse is the job's (a cancellation): until it is settled the policy is in grace.
        state = "in_grace" if found.state == "lapsed" else found.state
        previous = old or "active"
        if previous == "reinstated" and state == "active":
            state = "reinstated"  # stays reinstated until it falls behind again
        if take_steps:
            new_through = found.stepped_through
            steps = [s for s in found.steps if not s.stale]
        else:
            new_through = through if found.anchor == anchor else None
            steps = []
        if found.anchor is None:
            new_through = None
        key = (state, found.anchor, found.amount_overdue, new_through, found.next_on)
        if old is None:
            if state == "active" and not steps:
                continue
        elif key == (old, anchor, overdue, through, next_on):
            continue
        row = {
            "policy_id": policy_id,
            "state": state,
            "since": as_of if state != previous or old is None else None,
            "anchor_due_date": found.anchor,
            "amount_overdue": found.amount_overdue,
            "currency": currency,
            "through": new_through,
            "evaluated_on": as_of,
            "next_on": found.next_on,
            "old_state": old,
            "old_through": through,
        }
        (new_rows if old is None else changed).append(row)
        facts[policy_id] = {
            "from_state": previous,
            "to_state": state,
            "oldest_unpaid_due_date": found.anchor,
            "amount_overdue": found.amount_overdue,
            "currency": currency,
            "grace_ends_on": found.grace_ends_on,
            "chased": status,
        }
        for step in steps:
            step_rows.append(
                {
                    "policy_id": policy_id,
                    "installment_id": anchors.get(policy_id),
                    "anchor_due_date": found.anchor,
                    "step": step.step,
                    "days_after_due": step.days_after_due,
                    "taken_on": as_of,
                    "amount_overdue": found.amount_overdue,
                    "currency": currency,
                    "status": "pending" if step.step in DEFERRED else "taken",
                    "job_run_id": job_run_id,
                }
            )
    won = _insert_new(session, new_rows) | _update_changed(session, changed)
    moved = [
        policy_id
        for policy_id in sorted(won)
        if facts[policy_id]["from_state"] != facts[policy_id]["to_state"]
    ]
    # A step goes with its policy's row: a process that lost the row to another takes none.
    taken = _insert_steps(session, [r for r in step_rows if r["policy_id"] in won])
    statuses = []
    for p in moved:
        status = "active" if facts[p]["to_state"] == "reinstated" else facts[p]["to_state"]
        if status != facts[p]["chased"]:
            statuses.append({"id": p, "status": status})
    update_rows(session, Policy.__table__, statuses, assign=["status"])
    outcome.transitions = [
        {
            "policy_id": p,
            "from_state": facts[p]["from_state"],
            "to_state": facts[p]["to_state"],
            "on": as_of,
            "oldest_unpaid_due_date": facts[p]["oldest_unpaid_due_date"],
            "amount_overdue": facts[p]["amount_overdue"],
            "currency": facts[p]["currency"],
        }
        for p in moved
    ]
    written = [step_fact(step, facts[step["policy_id"]]["grace_ends_on"]) for step in taken]
    outcome.steps = [s for s in written if s["status"] != "pending"]
    outcome.deferred = [s for s in written if s["status"] == "pending"]
    announce(session, settings, outcome.transitions, outcome.steps)
    return outcome


def step_fact(step: dict[str, Any], grace_ends_on: date | None) -> dict[str, Any]:
    """A step row as COLLECTION_STEPS_TAKEN names it."""
    fact = {
        "step_id": step["id"],
        "policy_id": step["policy_id"],
        "installment_id": step["installment_id"],
        "step": step["step"],
        "on": step["taken_on"],
        "oldest_unpaid_due_date": step["anchor_due_date"],
        "amount_overdue": step["amount_overdue"],
        "currency": step["currency"],
        "grace_ends_on": grace_ends_on,
        "lapse_on": grace_ends_on,
        "status": step["status"],
    }
    if step["step"] == "reminder":
        fact["offset"] = step["days_after_due"]
    return fact


def announce(
    session: Session,
    settings: Settings,
    transitions: Sequence[dict[str, Any]],
    steps: Sequence[dict[str, Any]],
) -> None:
    """Audit (one row per set) and publish what changed, in this transaction. A batch
    statement's `Written` rows carry their ids per kind, so they are not read for this."""
    if transitions:
        # One row per set: the policies of each move (ids only: a batch moves thousands).
        moves = getattr(transitions, "groups", None) or _grouped(
            transitions, lambda t: f"{t['from_state']}->{t['to_state']}", "policy_id"
        )
        audit.record(
            session,
            "delinquency_changed",
            "policies",
            None,
            after={"on": getattr(transitions, "on", None) or transitions[0]["on"],
                   "policies": moves},
        )  # fmt: skip
        publish(session, DELINQUENCY_CHANGED, transitions=transitions, settings=settings)
    if steps:
        taken = getattr(steps, "groups", None) or _grouped(steps, lambda s: s["step"], "step_id")
        audit.record(
            session, "collection_steps_taken", "collection_steps", None, after={"steps": taken}
        )
        publish(session, COLLECTION_STEPS_TAKEN, steps=steps, settings=settings)


def _grouped(
    rows: Sequence[dict[str, Any]], key: Callable[[dict[str, Any]], str], id_name: str
) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row[id_name])
    return groups


def _anchor(owed: list[tuple[date, int, int | None]]) -> date | None:
    dues = [d for d, a, _i in owed if a > 0]
    return min(dues) if dues else None


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, default=lambda v: v.isoformat())


_STATE_COLUMNS = (
    "policy_id, state, since, anchor_due_date, amount_overdue, currency, through, "
    "evaluated_on, next_on, updated_at"
)
_STEP_COLUMNS = (
    "policy_id, installment_id, anchor_due_date, step, days_after_due, taken_on, "
    "amount_overdue, currency, status, job_run_id, created_at"
)


def _source(session: Session, columns: dict[str, str]) -> str:
    """The JSON rows parameter as a table of these typed columns, on either dialect."""
    if _is_pg(session):
        spec = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        return f"json_to_recordset(CAST(:rows AS json)) AS v({spec})"
    picks = ", ".join(f"json_extract(value, '$.{name}') AS {name}" for name in columns)
    return f"(SELECT {picks} FROM json_each(:rows)) AS v"


_STATE_TYPES = {
    "policy_id": "bigint",
    "state": "text",
    "since": "date",
    "anchor_due_date": "date",
    "amount_overdue": "bigint",
    "currency": "text",
    "through": "integer",
    "evaluated_on": "date",
    "next_on": "date",
    "old_state": "text",
    "old_through": "integer",
}


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> set[int]:
    if not rows:
        return set()
    stmt = text(
        f"INSERT INTO delinquencies ({_STATE_COLUMNS}) "
        "SELECT v.policy_id, v.state, v.since, v.anchor_due_date, v.amount_overdue, "
        "v.currency, v.through, v.evaluated_on, v.next_on, :now "
        f"FROM {_source(session, _STATE_TYPES)} "
        "WHERE true ON CONFLICT (policy_id) DO NOTHING RETURNING policy_id"
    ).bindparams(bindparam("now", type_=_stamp_type()))
    return {int(r) for r in session.scalars(stmt, {"rows": _json(rows), "now": utcnow()})}


def _update_changed(session: Session, rows: list[dict[str, Any]]) -> set[int]:
    """Update the rows still as they were read; the ids updated."""
    if not rows:
        return set()
    if _is_pg(session):
        stmt = text(
            "UPDATE delinquencies AS t SET state = v.state, "
            "since = coalesce(v.since, t.since), anchor_due_date = v.anchor_due_date, "
            "amount_overdue = v.amount_overdue, through = v.through, "
            "evaluated_on = v.evaluated_on, next_on = v.next_on, updated_at = now() "
            f"FROM {_source(session, _STATE_TYPES)} "
            "WHERE t.policy_id = v.policy_id AND t.state = v.old_state "
            "AND t.through IS NOT DISTINCT FROM v.old_through RETURNING t.policy_id"
        )
        return {int(r) for r in session.scalars(stmt, {"rows": _json(rows)})}
    # SQLite: one writer at a time, so the rows are as read.
    session.execute(
        text(
            "UPDATE delinquencies SET state = :state, since = coalesce(:since, since), "
            "anchor_due_date = :anchor_due_date, amount_overdue = :amount_overdue, "
            "through = :through, evaluated_on = :evaluated_on, next_on = :next_on, "
            "updated_at = :now "
            "WHERE policy_id = :policy_id"
        ).bindparams(
            bindparam("since", type_=Date()),
            bindparam("anchor_due_date", type_=Date()),
            bindparam("evaluated_on", type_=Date()),
            bindparam("next_on", type_=Date()),
            bindparam("now", type_=_stamp_type()),
        ),
        [{**r, "now": utcnow()} for r in rows],
    )
    return {r["policy_id"] for r in rows}


_STEP_TYPES = {
    "policy_id": "bigint",
    "installment_id": "bigint",
    "anchor_due_date": "date",
    "step": "text",
    "days_after_due": "integer",
    "taken_on": "date",
    "amount_overdue": "bigint",
    "currency": "text",
    "status": "text",
    "job_run_id": "bigint",
}


def _insert_steps(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert the steps not taken yet; the rows written (with their ids)."""
    if not rows:
        return []
    stmt = text(
        f"INSERT INTO collection_steps ({_STEP_COLUMNS}) "
        f"SELECT {', '.join('v.' + c for c in _STEP_TYPES)}, :now "
        f"FROM {_source(session, _STEP_TYPES)} WHERE true ON CONFLICT DO NOTHING "
        f"RETURNING id, {', '.join(_STEP_TYPES)}"
    ).bindparams(
        bindparam("now", type_=_stamp_type()),
    )
    written = session.execute(stmt, {"rows": _json(rows), "now": utcnow()}).mappings().all()
    out = []
    for row in written:
        item = dict(row)
        for name in ("anchor_due_date", "taken_on"):
            if isinstance(item[name], str):
                item[name] = date.fromisoformat(item[name])
        out.append(item)
    return sorted(out, key=lambda r: r["id"])


def _stamp_type() -> Any:
    from premium_billing.db.types import UTCDateTime

    return UTCDateTime()


def after_money_moved(
    session: Session, settings: Settings, invoice_ids: Sequence[int], on: date
) -> Assessed:
    """Re-evaluate, in the posting's transaction, the delinquent policies whose invoices a
    payment, credit, write-off, refund or reversal changed (one query finds them: a policy
    that is not behind cannot be brought back by money coming in; the job sees the rest)."""
    if not invoice_ids:
        return Assessed()
    policy_ids = session.scalars(
        select(Invoice.policy_id)
        .join(Delinquency, Delinquency.policy_id == Invoice.policy_id)
        .where(
            any_of(session, Invoice.id, invoice_ids),
            Delinquency.state.in_(("past_due", "in_grace")),
        )
        .distinct()
    ).all()
    return assess_policies(session, settings, sorted(policy_ids), on, take_steps=False)
