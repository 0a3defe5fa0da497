"""The `collections` job for a business date: every policy with an unpaid invoice (or still
delinquent) assessed in batches that commit (`assess.assess_policies`: set-based reads and
writes, no per-policy ORM loop), then the steps that are transactions of their own: each
pending lapse settled as a cancellation for non-payment (`cancellations.service.lapse`), each
pending late fee invoiced, and each lapsed policy whose arrears are paid within the window
reinstated (with the plan's reinstatement fee).

Two runs, or two processes at once, take each step once: a step is a unique row, and only
the process whose row was written publishes it. A killed run leaves whole batches: the next
run finishes the rest (a pending lapse or fee is retried).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, union, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.actor import current_actor, set_actor
from premium_billing.cancellations import queries as arrears
from premium_billing.cancellations import service as cancellations
from premium_billing.collections import assess_pg, rules
from premium_billing.collections.assess import (
    CHASED,
    Assessed,
    announce,
    assess_policies,
    horizon,
    step_fact,
)
from premium_billing.collections.models import CollectionStep, Delinquency
from premium_billing.collections.plans import plan_for, plans
from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.db.errors import violated
from premium_billing.errors import DomainError
from premium_billing.invoicing.issue import issue_one
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.payments import writeoffs
from premium_billing.policies.models import Cancellation, Policy

log = logging.getLogger(__name__)


@dataclass
class CollectionsStats:
    as_of: date
    policies_assessed: int = 0
    batches: int = 0
    transitions: dict[str, int] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)
    lapsed: int = 0
    reinstated: int = 0
    written_off: int = 0
    failed: int = 0

    def add(self, outcome: Assessed) -> None:
        moved, taken = outcome.counts()
        for state, count in moved.items():
            self.transitions[state] = self.transitions.get(state, 0) + count
        for step, count in taken.items():
            self.steps[step] = self.steps.get(step, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "policies_assessed": self.policies_assessed,
            "batches": self.batches,
            "transitions": dict(sorted(self.transitions.items())),
            "steps": dict(sorted(self.steps.items())),
            "lapsed": self.lapsed,
            "reinstated": self.reinstated,
            "written_off": self.written_off,
            "failed": self.failed,
        }


def run_collections(
    db: Database,
    settings: Settings,
    as_of: date,
    *,
    job_run_id: int | None = None,
    batch_size: int = 5000,
    progress: Callable[[int], None] | None = None,
) -> CollectionsStats:
    """Assess every policy owing something (or still delinquent) on `as_of`, take the steps
    whose day has come, settle the lapses, reinstate what was paid in time."""
    stats = CollectionsStats(as_of)

    def done(assessed: tuple[int, Assessed]) -> None:
        count, outcome = assessed
        stats.policies_assessed += count
        stats.batches += 1
        stats.add(outcome)
        if progress is not None:
            progress(count)

    workers = max(1, settings.collections_workers) if db.dialect == "postgresql" else 1
    # The next batch is read while the last ones are assessed (ids after theirs); at most
    # `workers` batches in flight, each one transaction in a thread with a session of its own.
    pool = ThreadPoolExecutor(
        workers, thread_name_prefix="collections", initializer=set_actor,
        initargs=(current_actor(),),
    ) if workers > 1 else None  # fmt: skip
    in_flight: deque[Future[tuple[int, Assessed]]] = deque()
    after = 0
    try:
        while True:
            with db.session() as session:
                ids = _next_batch(session, settings, as_of, after, batch_size)
            if not ids:
                break
            after = ids[-1]
            if pool is None:
                done(_assess_batch(db, settings, as_of, ids, job_run_id))
                continue
            in_flight.append(pool.submit(_assess_batch, db, settings, as_of, ids, job_run_id))
            while len(in_flight) >= workers:
                done(in_flight.popleft().result())
        while in_flight:
            done(in_flight.popleft().result())
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    _deferred_steps(db, settings, as_of, stats)
    _reinstatements(db, settings, as_of, stats, job_run_id)
    if settings.collections_write_off_after_window:
        _write_off_closed(db, settings, as_of, stats, job_run_id)
    log.info("collections done", extra={"stats": stats.as_dict()})
    return stats


def _assess_batch(
    db: Database, settings: Settings, as_of: date, ids: list[int], job_run_id: int | None
) -> tuple[int, Assessed]:
    """One batch of policies assessed and its steps taken: one transaction."""
    with db.session() as session:
        if db.dialect == "postgresql":  # the same, as one statement (assess_pg)
            outcome = assess_pg.assess_batch(
                session, settings, plans(settings), ids, as_of, job_run_id
            )
        else:
            outcome = assess_policies(
                session, settings, ids, as_of, take_steps=True, job_run_id=job_run_id
            )
        session.commit()
    return len(ids), outcome


def _next_batch(
    session: Session, settings: Settings, as_of: date, after: int, size: int
) -> list[int]:
    """The next `size` policy ids after `after` that owe an invoice due by the horizon, or
    whose delinquency row says they are behind (a void or a refund may have cleared them)."""
    # A policy whose row says nothing happens before a later day is skipped (a payment
    # re-evaluates it in its own transaction): an immediate re-run reads only this index.
    due = or_(
        Delinquency.policy_id.is_(None),
        Delinquency.next_on.is_(None),
        Delinquency.next_on <= as_of,
    )
    owing = (
        select(Invoice.policy_id.label("policy_id"))
        # The bound on both sides: a merge join would otherwise read the delinquencies
        # from the first policy for every batch (quadratic over a run).
        .outerjoin(
            Delinquency,
            and_(Delinquency.policy_id == Invoice.policy_id, Delinquency.policy_id > after),
        )
        .where(
            Invoice.policy_id > after,
            Invoice.status.in_(PAYABLE_STATUSES),
            Invoice.due_date <= horizon(settings, as_of),
            due,
        )
        .group_by(Invoice.policy_id)
        .order_by(Invoice.policy_id)
        .limit(size)
    )
    behind = (
        select(Delinquency.policy_id.label("policy_id"))
        .join(Policy, Policy.id == Delinquency.policy_id)
        .where(
            Policy.status.in_(CHASED),
            Delinquency.policy_id > after,
            Delinquency.state.in_(("past_due", "in_grace")),
            Delinquency.next_on <= as_of,
        )
        .order_by(Delinquency.policy_id)
        .limit(size)
    )
    both = union(owing.subquery().select(), behind.subquery().select()).subquery()
    return list(session.scalars(select(both.c.policy_id).order_by(both.c.policy_id).limit(size)))


def _deferred_steps(db: Database, settings: Settings, as_of: date, stats: CollectionsStats) -> None:
    """Each pending lapse and late fee in a transaction of its own (a lapse settles the
    account, a fee issues an invoice); a failure leaves it pending for the next run."""
    with db.session() as session:
        pending = list(
            session.execute(
                select(CollectionStep.id, CollectionStep.step)
                .where(CollectionStep.status == "pending", CollectionStep.taken_on <= as_of)
                .order_by(CollectionStep.id)
            )
        )
    for step_id, step in pending:
        with db.session() as session:
            try:
                if step == "lapse":
                    _lapse(session, settings, step_id, as_of)
                    stats.lapsed += 1
                else:
                    _late_fee(session, settings, step_id)
                stats.steps[step] = stats.steps.get(step, 0) + 1
            except DomainError as error:
                session.rollback()
                stats.failed += 1
                log.warning(
                    "collections step failed",
                    extra={"step_id": step_id, "step": step, "error": str(error)},
                )


def _claim(
    session: Session, settings: Settings, step_id: int
) -> tuple[CollectionStep, Policy, rules.Plan] | None:
    """The pending step (locked), its policy and plan; None (rolled back) when another
    process took it meanwhile."""
    row = session.scalar(
        select(CollectionStep).where(CollectionStep.id == step_id).with_for_update()
    )
    if row is None or row.status != "pending":
        session.rollback()
        return None
    policy = session.get(Policy, row.policy_id)
    assert policy is not None
    return row, policy, plan_for(settings, policy.product)


def _lapse(session: Session, settings: Settings, step_id: int, as_of: date) -> None:
    claimed = _claim(session, settings, step_id)
    if claimed is None:
        return
    row, policy, plan = claimed
    lapse_on = row.anchor_due_date + _days(plan.grace_days)
    if policy.status not in CHASED:
        row.status = "failed"  # cancelled or lapsed meanwhile: nothing to lapse
        session.commit()
        return
    policy_id, step = row.policy_id, dict(_step_dict(row))

    def lapsed(session: Session) -> None:
        taken = session.get(CollectionStep, step_id)
        assert taken is not None
        taken.status = "taken"
        delinquency = session.get(Delinquency, policy_id)
        before = delinquency.state if delinquency is not None else "in_grace"
        if delinquency is not None:
            delinquency.state = "lapsed"
            delinquency.since = as_of
            delinquency.lapsed_on = lapse_on
            delinquency.evaluated_on = as_of
            delinquency.next_on = None
        transition = {
            "policy_id": policy_id,
            "from_state": before,
            "to_state": "lapsed",
            "on": as_of,
            "oldest_unpaid_due_date": step["anchor_due_date"],
            "amount_overdue": step["amount_overdue"],
            "currency": step["currency"],
        }
        announce(
            session,
            settings,
            [transition],
            [step_fact({**step, "status": "taken"}, lapse_on)],
        )

    cancellations.lapse(session, settings, policy_id, lapse_on, then=lapsed)


def _late_fee(session: Session, settings: Settings, step_id: int) -> None:
    claimed = _claim(session, settings, step_id)
    if claimed is None:
        return
    row, policy, plan = claimed
    if plan.late_fee > 0:
        issue_one(
            session,
            policy_id=policy.id,
            policyholder_id=policy.policyholder_id,
            currency=policy.currency,
            lines=[{"kind": "late_fee", "description": "Late fee", "amount": plan.late_fee}],
            issue_date=row.taken_on,
            due_date=row.taken_on,
            settings=settings,
        )
    row.status = "taken"
    announce(
        session,
        settings,
        [],
        [step_fact(_step_dict(row), row.anchor_due_date + _days(plan.grace_days))],
    )
    session.commit()


def _reinstatements(
    db: Database, settings: Settings, as_of: date, stats: CollectionsStats, job_run_id: int | None
) -> None:
    """Reinstate each lapsed policy whose arrears are paid within its window."""
    longest_window = max(plan.reinstatement_days for plan in plans(settings).values())
    with db.session() as session:
        lapsed = list(
            session.execute(
                select(Delinquency.policy_id, Delinquency.lapsed_on).where(
                    Delinquency.state == "lapsed",
                    # Only those whose window may still be open: the rest stay lapsed.
                    Delinquency.lapsed_on >= as_of - _days(longest_window),
                )
            )
        )
    for policy_id, lapsed_on in lapsed:
        with db.session() as session:
            policy = session.get(Policy, policy_id)
            if policy is None or policy.status != "lapsed":
                continue
            plan = plan_for(settings, policy.product)
            cancellation = session.scalar(
                select(Cancellation)
                .where(Cancellation.policy_id == policy_id, Cancellation.reinstated_on.is_(None))
                .order_by(Cancellation.id.desc())
            )
            if cancellation is None:
                continue
            owed = arrears.arrears_on(
                session, policy_id, as_of, excluding=cancellation.final_invoice_id
            )
            if rules.after_lapse(lapsed_on, as_of, owed, plan) != "reinstate":
                session.rollback()
                continue
            try:
                _reinstate(session, settings, policy, plan, lapsed_on, as_of, job_run_id)
                stats.reinstated += 1
                stats.steps["reinstatement"] = stats.steps.get("reinstatement", 0) + 1
            except DomainError as error:
                session.rollback()
                stats.failed += 1
                log.warning(
                    "reinstatement failed", extra={"policy_id": policy_id, "error": str(error)}
                )


def _reinstate(
    session: Session,
    settings: Settings,
    policy: Policy,
    plan: rules.Plan,
    lapsed_on: date,
    as_of: date,
    job_run_id: int | None,
) -> None:
    policy_id = policy.id
    holder, currency = policy.policyholder_id, policy.currency
    anchor = lapsed_on - _days(plan.grace_days)

    def reinstated(session: Session) -> None:
        step = CollectionStep(
            policy_id=policy_id,
            installment_id=None,
            anchor_due_date=anchor,
            step="reinstatement",
            days_after_due=plan.grace_days,
            taken_on=as_of,
            amount_overdue=0,
            currency=currency,
            status="taken",
            job_run_id=job_run_id,
        )
        session.add(step)
        session.flush()  # unique: a second process loses here and rolls back
        if plan.reinstatement_fee > 0:
            issue_one(
                session,
                policy_id=policy_id,
                policyholder_id=holder,
                currency=currency,
                lines=[
                    {
                        "kind": "reinstatement_fee",
                        "description": "Reinstatement fee",
                        "amount": plan.reinstatement_fee,
                    }
                ],
                issue_date=as_of,
                due_date=as_of,
                settings=settings,
            )
        session.execute(
            update(Delinquency)
            .where(Delinquency.policy_id == policy_id)
            .values(state="reinstated", since=as_of, anchor_due_date=None, amount_overdue=0,
                    through=None, evaluated_on=as_of, next_on=None)
        )  # fmt: skip
        announce(
            session,
            settings,
            [
                {
                    "policy_id": policy_id,
                    "from_state": "lapsed",
                    "to_state": "reinstated",
                    "on": as_of,
                    "oldest_unpaid_due_date": None,
                    "amount_overdue": 0,
                    "currency": currency,
                }
            ],
            [step_fact(_step_dict(step), None)],
        )

    cancellations.reinstate(
        session,
        settings.with_overrides(reinstatement_days=plan.reinstatement_days),
        policy_id,
        as_of,
        then=reinstated,
    )


def _write_off_closed(
    db: Database, settings: Settings, as_of: date, stats: CollectionsStats, job_run_id: int | None
) -> None:
    """COLLECTIONS_WRITE_OFF_AFTER_WINDOW: a lapsed policy whose window closed in the last
    month has what it still owes written off (through the posting engine), once: a
    `write_off` step row, unique, in the same transaction."""
    longest = max(plan.reinstatement_days for plan in plans(settings).values())
    with db.session() as session:
        closed = list(
            session.execute(
                select(Delinquency.policy_id, Delinquency.lapsed_on, Policy.product)
                .join(Policy, Policy.id == Delinquency.policy_id)
                .where(
                    Delinquency.state == "lapsed",
                    Policy.status == "lapsed",
                    Delinquency.lapsed_on < as_of,
                    Delinquency.lapsed_on >= as_of - _days(longest + 31),
                )
            )
        )
    for policy_id, lapsed_on, product in closed:
        plan = plan_for(settings, product)
        if rules.after_lapse(lapsed_on, as_of, 0, plan) != "closed":
            continue
        with db.session() as session:
            step = CollectionStep(
                policy_id=policy_id,
                installment_id=None,
                anchor_due_date=lapsed_on - _days(plan.grace_days),
                step="write_off",
                days_after_due=plan.grace_days + plan.reinstatement_days,
                taken_on=as_of,
                amount_overdue=0,
                currency="",
                status="taken",
                job_run_id=job_run_id,
            )
            policy = session.get(Policy, policy_id)
            assert policy is not None
            step.currency = policy.currency
            session.add(step)
            try:
                session.flush()
            except IntegrityError as error:
                session.rollback()
                if violated(error, "uq_collection_steps_once", "collection_steps.policy_id"):
                    continue  # done before, or by another process
                raise
            owing = session.scalars(
                select(Invoice.id).where(
                    Invoice.policy_id == policy_id,
                    Invoice.status.in_(PAYABLE_STATUSES),
                    Invoice.amount_due > 0,
                )
            ).all()
            for invoice_id in owing:
                invoice = session.get(Invoice, invoice_id)
                assert invoice is not None
                step.amount_overdue += invoice.amount_due
                writeoffs.write_off(
                    session,
                    settings,
                    invoice_id,
                    "lapsed: reinstatement window closed",
                    on=as_of,
                    commit=False,
                )
            session.commit()
            stats.written_off += 1


def _step_dict(row: CollectionStep) -> dict[str, Any]:
    return {
        "id": row.id,
        "policy_id": row.policy_id,
        "installment_id": row.installment_id,
        "step": row.step,
        "taken_on": row.taken_on,
        "anchor_due_date": row.anchor_due_date,
        "amount_overdue": row.amount_overdue,
        "currency": row.currency,
        "status": row.status,
        "days_after_due": row.days_after_due,
    }


def _days(n: int) -> timedelta:
    return timedelta(days=n)
