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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, and_, case, cast, func, select, union_all
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


def moved_after(as_of: date) -> Any:
    """Per invoice, the sum of its receivable legs posted after `as_of` (minor units; < 0
    what was paid, credited or written off since)."""
    return (
        select(
            JournalLine.invoice_id.label("invoice_id"),
            cast(func.sum(JournalLine.amount), BigInteger).label("moved"),
        )
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .where(
            JournalEntry.occurred_on > as_of,
            JournalLine.account == ledger.PREMIUM_RECEIVABLE,
            JournalLine.invoice_id.is_not(None),
        )
        .group_by(JournalLine.invoice_id)
    )


def _owed_now(as_of: date, currency: str | None) -> Select[Any]:
    """The invoices owed today, issued by `as_of` (amount due > 0 only when payable)."""
    stmt = select(Invoice).where(
        Invoice.status.in_(PAYABLE_STATUSES), Invoice.amount_due > 0, Invoice.issue_date <= as_of
    )
    return stmt.where(Invoice.currency == currency) if currency is not None else stmt


def open_invoices(
    as_of: date, currency: str | None = None, policy_ids: Sequence[int] | None = None
) -> Any:
    """A subquery of the invoices owed at the end of `as_of`, exactly: (invoice_id,
    policy_id, currency, due_date, remaining), remaining > 0 in minor units. Those untouched
    since owe their amount due; those touched since (few, for a recent day) owe their
    amount due less what moved on them since."""
    later = moved_after(as_of).cte("moved_after")
    columns = (
        Invoice.id.label("invoice_id"),
        Invoice.policy_id,
        Invoice.currency,
        Invoice.due_date,
    )
    untouched = (
        _owed_now(as_of, currency)
        .with_only_columns(*columns, Invoice.amount_due.label("remaining"))
        .where(~select(later.c.invoice_id).where(later.c.invoice_id == Invoice.id).exists())
    )
    remaining = Invoice.amount_due - later.c.moved
    touched = (
        select(*columns, remaining.label("remaining"))
        .join(later, later.c.invoice_id == Invoice.id)
        .where(Invoice.issue_date <= as_of, remaining > 0)
    )
    if currency is not None:
        touched = touched.where(Invoice.currency == currency)
    if policy_ids is not None:
        untouched = untouched.where(Invoice.policy_id.in_(list(policy_ids)))
        touched = touched.where(Invoice.policy_id.in_(list(policy_ids)))
    return union_all(untouched, touched).subquery("open_as_of")


def _bucket_sums(due_date: Any, amount: Any, as_of: date) -> list[ColumnElement[Any]]:
    """One `sum(...)` column per bucket of `amount` by `due_date`, labelled `b_<bucket>`."""
    sums = []
    later_bound: date | None = None
    for cut in rules.bucket_cutoffs(as_of):
        conditions = []
        if cut.earliest_due_date is not None:
            conditions.append(due_date >= cut.earliest_due_date)
        if later_bound is not None:
            conditions.append(due_date < later_bound)
        part = case((and_(*conditions), amount), else_=0) if conditions else amount
        sums.append(func.coalesce(func.sum(part), 0).label(f"b_{cut.bucket}"))
        later_bound = cut.earliest_due_date
    return sums


def aging_totals(session: Session, as_of: date, currency: str | None = None) -> list[AgingTotals]:
    """Per currency (ascending), what was owed at the end of `as_of` in each bucket.

    Two grouped reads, added per currency: today's amount due of the invoices owed now
    (the bare GROUP BY), and for the invoices touched since `as_of`, what moved on them
    since, taken back (−moved), with the count of those owed then but not now less those
    owed now but not then (none when nothing was posted after `as_of`)."""
    now = _owed_now(as_of, currency).subquery("owed_now")
    bare = select(
        now.c.currency, *_bucket_sums(now.c.due_date, now.c.amount_due, as_of), func.count()
    ).group_by(now.c.currency)
    later = moved_after(as_of).subquery("moved_after")
    remaining = Invoice.amount_due - later.c.moved
    fix = (
        select(
            Invoice.currency,
            *_bucket_sums(Invoice.due_date, -later.c.moved, as_of),
            func.sum(
                case((remaining > 0, 1), else_=0) - case((Invoice.amount_due > 0, 1), else_=0)
            ),
        )
        .join(later, later.c.invoice_id == Invoice.id)
        .where(Invoice.issue_date <= as_of)
        .group_by(Invoice.currency)
    )
    if currency is not None:
        fix = fix.where(Invoice.currency == currency)
    # Nothing posted after `as_of` (today's aging, the KPIs): nothing to take back.
    since = select(JournalEntry.id).where(JournalEntry.occurred_on > as_of).limit(1)
    reads = (bare, fix) if session.scalar(since) is not None else (bare,)
    sums: dict[str, list[int]] = {}
    for stmt in reads:
        for row in session.execute(stmt):
            into = sums.setdefault(row[0], [0] * (len(rules.BUCKETS) + 1))
            for i, value in enumerate(row[1:]):
                into[i] += int(value or 0)
    out = []
    for cur in sorted(sums):
        *amounts, invoices = sums[cur]
        if invoices == 0 and not any(amounts):
            continue
        buckets = dict(zip(rules.BUCKETS, amounts, strict=True))
        out.append(AgingTotals(cur, buckets, sum(amounts), invoices))
    return out


def _rows_stmt(as_of: date, currency: str | None, policy_ids: Sequence[int] | None) -> Select[Any]:
    owed = open_invoices(as_of, currency, policy_ids)
    grouped = (
        select(
            owed.c.policy_id,
            func.min(owed.c.due_date).label("oldest_due_date"),
            *_bucket_sums(owed.c.due_date, owed.c.remaining, as_of),
        )
        .group_by(owed.c.policy_id)
        .subquery("per_policy")
    )
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


def _next_policy_ids(
    session: Session, as_of: date, currency: str | None, after: int | None, count: int
) -> list[int]:
    """The first `count` policies after `after` with an invoice owed now or touched since
    `as_of` (each read in policy order from an index): the candidates of a page."""
    owed = _owed_now(as_of, currency).with_only_columns(Invoice.policy_id)
    later = moved_after(as_of).subquery("moved_after")
    touched = (
        select(Invoice.policy_id)
        .join(later, later.c.invoice_id == Invoice.id)
        .where(Invoice.issue_date <= as_of)
    )
    if currency is not None:
        touched = touched.where(Invoice.currency == currency)
    found: set[int] = set()
    for stmt in (owed, touched):
        if after is not None:
            stmt = stmt.where(Invoice.policy_id > after)
        stmt = stmt.distinct().order_by(Invoice.policy_id).limit(count)
        found.update(session.scalars(stmt))
    return sorted(found)[:count]


def _row(row: Any, as_of: date) -> AgingRow:
    # By position (a CSV of a million rows): policy_id, oldest_due_date, the buckets, then
    # policy_number, policyholder_id, currency, status, policyholder_name (`_rows_stmt`).
    policy_id, oldest, *rest = row
    amounts = [int(v) for v in rest[: len(rules.BUCKETS)]]
    number_, holder_id, currency, status, name = rest[len(rules.BUCKETS) :]
    return AgingRow(
        policy_id=policy_id,
        policy_number=number_,
        policyholder_id=holder_id,
        policyholder_name=name,
        currency=currency,
        oldest_due_date=oldest,
        days_past_due=rules.days_past_due(as_of, oldest),
        buckets=dict(zip(rules.BUCKETS, amounts, strict=True)),
        total=sum(amounts),
        delinquency_state=status,
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
    `after_policy_id`) of what was owed at the end of `as_of`."""
    rows: list[AgingRow] = []
    after = after_policy_id
    while len(rows) <= limit:
        wanted = limit + 1 - len(rows)
        ids = _next_policy_ids(session, as_of, currency, after, wanted)
        if not ids:
            break
        # A candidate owing nothing then (paid before as_of, undone since) has no row.
        rows.extend(_row(row, as_of) for row in session.execute(_rows_stmt(as_of, currency, ids)))
        if len(ids) < wanted:
            break
        after = ids[-1]
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


# '0.00' per currency: most bucket cells are zero.
_ZERO: dict[str, str] = {}


def _cell(text: str) -> str:
    """Text a spreadsheet shows as text: a leading =, +, -, @, tab or CR would start a
    formula (CSV injection), so it gets a leading apostrophe."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_line(row: AgingRow) -> list[str]:
    """A row as CSV cells: amounts in major units of its currency ('480.00')."""
    zero = _ZERO.get(row.currency) or _ZERO.setdefault(row.currency, format_major(0, row.currency))
    return [
        f"pol_{row.policy_id}",
        _cell(row.policy_number),
        f"ph_{row.policyholder_id}",
        _cell(row.policyholder_name),
        row.currency,
        row.delinquency_state,
        row.oldest_due_date.isoformat(),
        str(row.days_past_due),
        *(format_major(v, row.currency) if v else zero for v in row.buckets.values()),
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
