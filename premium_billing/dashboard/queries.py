"""What the dashboard's pages read. Read-only: no function here writes.

ADAPTERS (filled from what main has today; the lead wires the features' own services in
at merge, keeping each function's name and shape):
- `aging_by_bucket`: from the open invoices' amounts due (→ reports' aging service, E);
- `billed_vs_collected`: from the journal's receivable legs (→ reports' KPIs, E);
- `delinquency_funnel`: from policies.status (→ collections' delinquency states, C).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from premium_billing.dashboard import rules
from premium_billing.invoicing.models import Invoice
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.payments.models import Payment, Refund
from premium_billing.policies.models import Policy
from premium_billing.reconciliation.models import ReconciliationRun
from premium_billing.reconciliation.runs import suspense_view

PAGE = 100  # rows of a list page; its CSV has them all

# ----------------------------------------------------------------------------- adapters


def aging_by_bucket(session: Session, as_of: date) -> dict[str, dict[str, int]]:
    """ADAPTER (E's aging service at merge): per currency, the amounts due of open invoices
    by aging bucket (current, 1_30, 31_60, 61_90, over_90) as of `as_of`, minor units."""
    rows = session.execute(
        select(Invoice.currency, Invoice.due_date, func.sum(Invoice.amount_due))
        .where(Invoice.status.in_(("open", "partially_paid")), Invoice.amount_due > 0)
        .where(Invoice.issue_date <= as_of)
        .group_by(Invoice.currency, Invoice.due_date)
    ).all()
    out: dict[str, dict[str, int]] = {}
    for currency, due_date, amount in rows:
        buckets = out.setdefault(currency, dict.fromkeys(rules.AGING_BUCKETS, 0))
        buckets[rules.aging_bucket(due_date, as_of)] += int(amount)
    return dict(sorted(out.items()))


# The receivable legs of money collected: a payment, a match or a credit applied settles
# an invoice (credit), an undone allocation re-opens it (debit).
COLLECTING = (
    ledger.PAYMENT_ALLOCATED,
    ledger.PAYMENT_MATCHED,
    ledger.CREDIT_APPLIED,
    ledger.PAYMENT_UNALLOCATED,
)


def billed_vs_collected(
    session: Session, start: date, end: date
) -> dict[str, list[tuple[str, int, int]]]:
    """ADAPTER (E's KPIs at merge): per currency and month from `start` to `end`, (month,
    billed, collected) in minor units: billed = the premium receivable raised by invoices
    issued (`invoice_issued` entries), collected = the receivable settled by payments,
    matches and credit applied, less allocations undone, by the entries' business dates."""
    rows = session.execute(
        select(JournalEntry.kind, JournalEntry.occurred_on, JournalLine.currency,
               func.sum(JournalLine.amount))
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .where(JournalLine.account == ledger.PREMIUM_RECEIVABLE)
        .where(JournalEntry.kind.in_((ledger.INVOICE_ISSUED, *COLLECTING)))
        .where(JournalEntry.occurred_on >= start, JournalEntry.occurred_on <= end)
        .group_by(JournalEntry.kind, JournalEntry.occurred_on, JournalLine.currency)
    ).all()  # fmt: skip
    billed: dict[tuple[str, str], int] = defaultdict(int)
    collected: dict[tuple[str, str], int] = defaultdict(int)
    currencies = set()
    for kind, on, currency, amount in rows:
        currencies.add(currency)
        key = (currency, rules.month_of(on))
        if kind == ledger.INVOICE_ISSUED:
            billed[key] += int(amount)
        else:
            collected[key] -= int(amount)
    months = rules.months(start, end)
    return {c: [(m, billed[(c, m)], collected[(c, m)]) for m in months] for c in sorted(currencies)}


def delinquency_funnel(session: Session) -> list[tuple[str, int]]:
    """ADAPTER (C's delinquency states at merge): how many policies are active, past due,
    in grace and lapsed now (policies.status)."""
    counts = dict(
        session.execute(
            select(Policy.status, func.count())
            .where(Policy.status.in_(rules.FUNNEL_STATES))
            .group_by(Policy.status)
        ).all()
    )
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
