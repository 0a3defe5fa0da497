"""Aging of premium receivable as of any date, per currency and per policy.

What an invoice still owed on `as_of` is read from the journal, not from today's amounts:
its amount due today less every receivable leg on it posted after `as_of` (payments,
credits applied, write-offs, credit notes, voids and their undoing, each with its
`occurred_on`). An invoice issued after `as_of` is not in it; one paid since is still
open then. The journal keeps `amount_due` equal to the invoice's receivable legs (`ledger
check`), so this equals summing its legs up to `as_of`, and reads only what moved since:
for today, nothing beyond the open invoices themselves.

Buckets are due-date comparisons (`rules.bucket_cutoffs`), the same on every dialect.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select, union_all
from sqlalchemy.orm import Session

from premium_billing.db import Database
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.money import format_major
from premium_billing.policies.models import Policy, Policyholder
from premium_billing.reports import rules

# CSV rows are fetched and written this many at a time (a server-side cursor on PostgreSQL).
CSV_CHUNK_ROWS = 2000


@dataclass(frozen=True)
class AgingTotals:
    """One currency's receivable on `as_of`, per bucket (minor units)."""

    currency: str
    buckets: dict[str, int]
    total: int
    invoices: int


@dataclass(frozen=True)
class AgingRow:
    """One policy's receivable on `as_of`, per bucket (minor units). `delinquency_state`:
    the policy's status now (`active`, `past_due`, `in_grace`, `lapsed`, `cancelled` …)."""

    policy_id: int
    policy_number: str
    policyholder_id: int
    policyholder_name: str
    currency: str
    oldest_due_date: date
    days_past_due: int
    buckets: dict[str, int]
    total: int
    delinquency_state: str


@dataclass(frozen=True)
class AgingReport:
    as_of: date
    totals: list[AgingTotals]
    rows: list[AgingRow] = field(default_factory=list)
    has_more: bool = False


def open_invoices(as_of: date, currency: str | None = None) -> Any:
    """A subquery of the invoices owed on `as_of`: (invoice_id, policy_id, currency,
    due_date, remaining), remaining > 0 in minor units."""
    later = (
        select(
            JournalLine.invoice_id.label("invoice_id"),
            func.sum(JournalLine.amount).label("moved"),
        )
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .where(
            JournalEntry.occurred_on > as_of,
            JournalLine.account == ledger.PREMIUM_RECEIVABLE,
            JournalLine.invoice_id.is_not(None),
        )
        .group_by(JournalLine.invoice_id)
        .cte("moved_after")
    )
    columns = (
        Invoice.id.label("invoice_id"),
        Invoice.policy_id,
        Invoice.currency,
        Invoice.due_date,
    )
    # Open now: less what moved on it since (nothing, for most).
    still_open = (
        select(*columns, (Invoice.amount_due - func.coalesce(later.c.moved, 0)).label("remaining"))
        .outerjoin(later, later.c.invoice_id == Invoice.id)
        .where(Invoice.status.in_(PAYABLE_STATUSES), Invoice.issue_date <= as_of)
    )
    # Settled (paid, written off, credited, voided) since: open again as of then.
    settled_since = (
        select(*columns, (Invoice.amount_due - later.c.moved).label("remaining"))
        .join(later, later.c.invoice_id == Invoice.id)
        .where(Invoice.status.not_in(PAYABLE_STATUSES), Invoice.issue_date <= as_of)
    )
    if currency is not None:
        still_open = still_open.where(Invoice.currency == currency)
        settled_since = settled_since.where(Invoice.currency == currency)
    return union_all(still_open, settled_since).subquery("open_as_of")


def _bucket_sums(owed: Any, as_of: date) -> list[ColumnElement[Any]]:
    """One `sum(...)` column per bucket, labelled with the bucket's name."""
    sums = []
    later_bound: date | None = None
    for cut in rules.bucket_cutoffs(as_of):
        conditions = []
        if cut.earliest_due_date is not None:
            conditions.append(owed.c.due_date >= cut.earliest_due_date)
        if later_bound is not None:
            conditions.append(owed.c.due_date < later_bound)
        amount = (
            case((and_(*conditions), owed.c.remaining), else_=0) if conditions else owed.c.remaining
        )
        sums.append(func.coalesce(func.sum(amount), 0).label(f"b_{cut.bucket}"))
        later_bound = cut.earliest_due_date
    return sums


def _buckets(row: Any) -> dict[str, int]:
    return {bucket: int(getattr(row, f"b_{bucket}")) for bucket in rules.BUCKETS}


def aging_totals(session: Session, as_of: date, currency: str | None = None) -> list[AgingTotals]:
    """Per currency (ascending), what was owed on `as_of` in each bucket."""
    owed = open_invoices(as_of, currency)
    stmt = (
        select(owed.c.currency, *_bucket_sums(owed, as_of), func.count().label("invoices"))
        .where(owed.c.remaining > 0)
        .group_by(owed.c.currency)
        .order_by(owed.c.currency)
    )
    out = []
    for row in session.execute(stmt):
        buckets = _buckets(row)
        out.append(AgingTotals(row.currency, buckets, sum(buckets.values()), int(row.invoices)))
    return out


def _rows_stmt(as_of: date, currency: str | None, after_policy_id: int | None) -> Select[Any]:
    owed = open_invoices(as_of, currency)
    per_policy = select(
        owed.c.policy_id,
        func.min(owed.c.due_date).label("oldest_due_date"),
        *_bucket_sums(owed, as_of),
    ).where(owed.c.remaining > 0)
    if after_policy_id is not None:
        per_policy = per_policy.where(owed.c.policy_id > after_policy_id)
    grouped = per_policy.group_by(owed.c.policy_id).subquery("per_policy")
    return (
        select(
            grouped,
            Policy.policy_number,
            Policy.policyholder_id,
            Policy.currency,
            Policy.status,
            Policyholder.name.label("policyholder_name"),
        )
        .join(Policy, Policy.id == grouped.c.policy_id)
        .join(Policyholder, Policyholder.id == Policy.policyholder_id)
        .order_by(grouped.c.policy_id)
    )


def _row(row: Any, as_of: date) -> AgingRow:
    buckets = _buckets(row)
    return AgingRow(
        policy_id=row.policy_id,
        policy_number=row.policy_number,
        policyholder_id=row.policyholder_id,
        policyholder_name=row.policyholder_name,
        currency=row.currency,
        oldest_due_date=row.oldest_due_date,
        days_past_due=rules.days_past_due(as_of, row.oldest_due_date),
        buckets=buckets,
        total=sum(buckets.values()),
        delinquency_state=row.status,
    )


def aging(
    session: Session,
    as_of: date,
    currency: str | None = None,
    *,
    limit: int = 50,
    after_policy_id: int | None = None,
) -> AgingReport:
    """The totals per currency and one page of rows per policy (ascending policy id, after
    `after_policy_id`) of what was owed on `as_of`."""
    stmt = _rows_stmt(as_of, currency, after_policy_id).limit(limit + 1)
    rows = [_row(row, as_of) for row in session.execute(stmt)]
    return AgingReport(
        as_of=as_of,
        totals=aging_totals(session, as_of, currency),
        rows=rows[:limit],
        has_more=len(rows) > limit,
    )


def aging_rows(session: Session, as_of: date, currency: str | None = None) -> Iterator[AgingRow]:
    """Every policy's row, ascending policy id, streamed: fetched `CSV_CHUNK_ROWS` at a time
    (a server-side cursor on PostgreSQL), so memory stays bounded whatever the book."""
    stmt = _rows_stmt(as_of, currency, None).execution_options(yield_per=CSV_CHUNK_ROWS)
    for row in session.execute(stmt):
        yield _row(row, as_of)


CSV_COLUMNS = (
    "policy_id",
    "policy_number",
    "policyholder_id",
    "policyholder_name",
    "currency",
    "delinquency_state",
    "oldest_due_date",
    "days_past_due",
    *rules.BUCKETS,
    "total",
)


def _cell(text: str) -> str:
    """Text a spreadsheet shows as text: a leading =, +, -, @, tab or CR would start a
    formula (CSV injection), so it gets a leading apostrophe."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_line(row: AgingRow) -> list[str]:
    """A row as CSV cells: amounts in major units of its currency ('480.00')."""
    return [
        f"pol_{row.policy_id}",
        _cell(row.policy_number),
        f"ph_{row.policyholder_id}",
        _cell(row.policyholder_name),
        row.currency,
        row.delinquency_state,
        row.oldest_due_date.isoformat(),
        str(row.days_past_due),
        *(format_major(row.buckets[b], row.currency) for b in rules.BUCKETS),
        format_major(row.total, row.currency),
    ]


def aging_csv(db: Database, as_of: date, currency: str | None = None) -> Iterator[str]:
    """The aging as CSV text chunks (a header, then a row per policy), read in a session of
    its own that lives as long as the download: for a streamed response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    with db.session() as session:
        for count, row in enumerate(aging_rows(session, as_of, currency), start=1):
            writer.writerow(csv_line(row))
            if count % CSV_CHUNK_ROWS == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        session.rollback()
    yield buffer.getvalue()


def csv_filename(as_of: date, currency: str | None) -> str:
    return f"aging-{as_of.isoformat()}{'-' + currency if currency else ''}.csv"
