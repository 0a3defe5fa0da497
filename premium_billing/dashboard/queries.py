"""What the dashboard's pages read. Read-only: no function here writes.

Every figure is the owning feature's own: aging from `reports.aging`, billed and collected
from `reports.kpis`, the delinquency funnel from collections' states, the worklist from
`collections.views`. Nothing here has a second formula for a figure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from premium_billing.collections.models import Delinquency
from premium_billing.collections.views import worklist
from premium_billing.dashboard import rules
from premium_billing.http.ids import format_id
from premium_billing.notifications.models import Notification
from premium_billing.notifications.rules import STATUSES as NOTIFICATION_STATUSES
from premium_billing.outbound.models import EventDelivery, OutboundEvent, WebhookEndpoint
from premium_billing.payments.models import Payment, Refund
from premium_billing.policies.models import Policy
from premium_billing.reconciliation.models import ReconciliationRun
from premium_billing.reconciliation.runs import suspense_view
from premium_billing.reports.aging import AgingTotals
from premium_billing.reports.kpis import daily_flows

PAGE = 100  # rows of a list page; its CSV has them all

# ----------------------------------------------------------------------------- charts


def aging_by_bucket(totals: Sequence[AgingTotals]) -> dict[str, dict[str, int]]:
    """Per currency, the receivable by aging bucket (current, 1_30, 31_60, 61_90,
    over_90), minor units, of the aging report's totals (`reports.aging.aging_totals`)."""
    return {t.currency: dict(t.buckets) for t in totals}


def billed_vs_collected(
    session: Session, start: date, end: date
) -> dict[str, list[tuple[str, int, int]]]:
    """Per currency and month from `start` to `end`, (month, billed, collected) in minor
    units: the KPIs' billed and collected (`reports.kpis.daily_flows`) summed per month."""
    billed: dict[tuple[str, str], int] = defaultdict(int)
    collected: dict[tuple[str, str], int] = defaultdict(int)
    currencies = set()
    for (currency, day), figures in daily_flows(session, start, end).items():
        currencies.add(currency)
        key = (currency, rules.month_of(day))
        billed[key] += figures["billed"]
        collected[key] += figures["collected"]
    months = rules.months(start, end)
    return {c: [(m, billed[(c, m)], collected[(c, m)]) for m in months] for c in sorted(currencies)}


def delinquency_funnel(session: Session) -> list[tuple[str, int]]:
    """How many policies are active, past due, in grace and lapsed now: past due, in grace
    and lapsed as collections left them (`delinquencies.state`, the policy's status in
    step); active: the policies in force with nothing in those states (never evaluated,
    cured or reinstated)."""
    counts = dict(
        session.execute(
            select(Delinquency.state, func.count())
            .join(Policy, Policy.id == Delinquency.policy_id)
            .where(Delinquency.state.in_(rules.FUNNEL_STATES[1:]))
            # Implied by the next line, but said: the policies are read by their status
            # index (the delinquent few), not all of them.
            .where(Policy.status.in_(rules.FUNNEL_STATES[1:]))
            .where(Policy.status == Delinquency.state)
            .group_by(Delinquency.state)
        ).all()
    )
    counts["active"] = session.execute(
        select(func.count()).select_from(Policy).where(Policy.status == "active")
    ).scalar_one()
    return [(state, int(counts.get(state, 0))) for state in rules.FUNNEL_STATES]


# ----------------------------------------------------------------------------- reconciliation


@dataclass(frozen=True)
class RunRate:
    id: int
    as_of: date
    examined: int
    matched: int  # matched or partially matched
    rate_bp: int  # matched / examined, basis points


def auto_match_rates(session: Session, runs: int = 12) -> list[RunRate]:
    """The auto-match rate of the latest finished reconciliation runs that examined any
    payment, oldest first: (matched + partially matched) / examined."""
    rows = session.scalars(
        select(ReconciliationRun)
        .where(ReconciliationRun.finished_at.is_not(None), ReconciliationRun.examined > 0)
        .order_by(ReconciliationRun.id.desc())
        .limit(runs)
    ).all()
    return [
        RunRate(r.id, r.as_of, r.examined, r.matched + r.partially_matched,
                rules.rate_bp(r.matched + r.partially_matched, r.examined))
        for r in reversed(rows)
    ]  # fmt: skip


def latest_run(session: Session) -> ReconciliationRun | None:
    return session.scalars(
        select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(1)
    ).first()


def recent_runs(session: Session, limit: int = PAGE) -> list[ReconciliationRun]:
    return list(
        session.scalars(
            select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(limit)
        )
    )


def _suspense_query(after: int | None) -> Any:
    stmt = select(Payment).where(Payment.status == "unapplied", Payment.policyholder_id.is_(None))
    if after is not None:
        stmt = stmt.where(Payment.id > after)
    return stmt.order_by(Payment.id)


def suspense_page(
    session: Session, after: int | None = None, limit: int = PAGE
) -> tuple[list[dict[str, Any]], bool]:
    """The suspense queue as GET /reconciliation/suspense shows it (ranked candidates with
    their reasons), `limit` payments after the id `after`; and whether more follow."""
    rows = list(session.scalars(_suspense_query(after).limit(limit + 1)))
    return suspense_view(session, rows[:limit]), len(rows) > limit


def suspense_all(session: Session, chunk: int = 500) -> Iterator[dict[str, Any]]:
    """Every suspense row, in id order, read `chunk` at a time (the CSV)."""
    after = None
    while True:
        rows, more = suspense_page(session, after, chunk)
        yield from rows
        if not more or not rows:
            return
        after = rows[-1]["payment"].id


def manual_matches(session: Session, limit: int = 20) -> list[Payment]:
    """The latest payments matched by hand that still hold allocations (each may be undone)."""
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.match_rule == "manual", Payment.amount_allocated > 0)
            .order_by(Payment.updated_at.desc(), Payment.id.desc())
            .limit(limit)
        )
    )


# ----------------------------------------------------------------------------- refunds


def refunds_to_pay(session: Session, limit: int | None = PAGE) -> list[Refund]:
    """Refunds finance pays (by check or transfer): owed and not through Stripe, or failed
    by Stripe; oldest first."""
    stmt = (
        select(Refund)
        .where(
            or_(
                (Refund.status == "pending") & (Refund.channel != "stripe"),
                Refund.status == "failed",
            )
        )
        .order_by(Refund.id)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


# ----------------------------------------------------------------------------- collections


def worklist_page(
    session: Session, as_of: date, after: str | None = None, limit: int = PAGE
) -> tuple[list[dict[str, Any]], bool]:
    """The collections worklist as `GET /reports/collections-worklist` has it (riskiest
    first), `limit` policies after the policy `after` (a public id); and whether more follow."""
    return worklist(session, as_of, {"limit": limit, "starting_after": after})


def worklist_all(session: Session, as_of: date, chunk: int = 500) -> Iterator[dict[str, Any]]:
    """The whole worklist, riskiest first, read `chunk` at a time (the CSV)."""
    after = None
    while True:
        rows, more = worklist_page(session, as_of, after, chunk)
        yield from rows
        if not more or not rows:
            return
        after = format_id("policy", rows[-1]["policy_id"])


# ----------------------------------------------------------------------------- notices, events


def notifications_page(
    session: Session, status: str | None, before: int | None = None, limit: int | None = PAGE
) -> tuple[list[Notification], bool]:
    """Emails to policyholders, newest first (optionally of one status: queued, sent,
    failed), before the id `before`; and whether more follow."""
    stmt = select(Notification).order_by(Notification.id.desc())
    if status is not None:
        stmt = stmt.where(Notification.status == status)
    if before is not None:
        stmt = stmt.where(Notification.id < before)
    if limit is None:
        return list(session.scalars(stmt.execution_options(yield_per=500))), False
    rows = list(session.scalars(stmt.limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def notification_counts(session: Session) -> dict[str, int]:
    """How many emails are queued, sent and failed."""
    counts = dict(
        session.execute(
            select(Notification.status, func.count()).group_by(Notification.status)
        ).all()
    )
    return {s: int(counts.get(s, 0)) for s in NOTIFICATION_STATUSES}


@dataclass(frozen=True)
class DeliveryRow:
    delivery: EventDelivery
    event_type: str
    url: str


def deliveries_page(
    session: Session, status: str | None, before: int | None = None, limit: int | None = PAGE
) -> tuple[list[DeliveryRow], bool]:
    """Outbound event deliveries, newest first (optionally of one status), with their
    event's type and endpoint's URL, before the id `before`; and whether more follow."""
    stmt = (
        select(EventDelivery, OutboundEvent.type, WebhookEndpoint.url)
        .join(OutboundEvent, OutboundEvent.id == EventDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == EventDelivery.endpoint_id)
        .order_by(EventDelivery.id.desc())
    )
    if status is not None:
        stmt = stmt.where(EventDelivery.status == status)
    if before is not None:
        stmt = stmt.where(EventDelivery.id < before)
    if limit is not None:
        stmt = stmt.limit(limit + 1)
    rows = [DeliveryRow(d, t, u) for d, t, u in session.execute(stmt)]
    if limit is None:
        return rows, False
    return rows[:limit], len(rows) > limit
