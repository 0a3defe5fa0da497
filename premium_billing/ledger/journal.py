"""The journal: every money movement is one balanced entry, written here.

Every line written here is also added, in the same transaction, to `journal_totals` (the
lines summed per business day, account, currency and entry kind). The additions are queued
on the session and written just before it commits, as one upsert per transaction
(`amount = amount + excluded.amount`: atomic on both backends, so concurrent writers never
lose an addition), its rows in key order: the rows are locked for the commit only (posting
transactions, forked reconciliation writers among them, do not wait on each other's whole
transactions) and always in one order (no deadlock between two of them). A savepoint rolled
back drops what was queued inside it, a rollback everything (as the audit trail does).
`rebuild_totals` derives the table from the lines (the migration's back-fill, a seeded
benchmark); `totals_differences` is `ledger check`'s test.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any, cast

from sqlalchemy import Connection, Table, event, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from premium_billing.db.bulk import insert_rows
from premium_billing.db.queued import TransactionQueue
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.models import JournalEntry, JournalLine, JournalTotal
from premium_billing.ledger.rules import Posting

LINES = cast(Table, JournalLine.__table__)
TOTALS = cast(Table, JournalTotal.__table__)
# (occurred_on, account, currency, kind): a row of journal_totals.
TotalKey = tuple[date, str, str, str]
# The additions queued on the session until its commit.
QUEUE = TransactionQueue("journal_totals")


def add_to_totals(session: Session, amounts: Iterable[tuple[TotalKey, int]]) -> None:
    """Queue `amounts` for the day totals; `write_totals` writes them before the commit."""
    session.connection()  # inside a transaction, so that its rollback drops them
    QUEUE.items(session).extend(amounts)


def write_totals(session: Session) -> None:
    """Write what is queued for the day totals: summed per key, one upsert of the keys in
    order (a key whose amounts cancel out still gets its row, as a day's lines that cancel
    out still have theirs). Runs before every commit; not committed here."""
    pending = QUEUE.take(session)
    sums: dict[TotalKey, int] = defaultdict(int)
    for key, amount in pending:
        sums[key] += amount
    rows = [
        {"occurred_on": on, "account": account, "currency": currency, "kind": kind,
         "amount": amount}
        for (on, account, currency, kind), amount in sorted(sums.items())
    ]  # fmt: skip
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(TOTALS).values(rows)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[
                TOTALS.c.occurred_on,
                TOTALS.c.account,
                TOTALS.c.currency,
                TOTALS.c.kind,
            ],
            set_={"amount": TOTALS.c.amount + stmt.excluded.amount},
        )  # fmt: skip
    )


# On every session, wherever it is made (the app, the CLI, a forked writer, a test): before
# any other listener's commit work (`insert`), so that every transaction locks the totals
# rows before the audit chain's head, in one order everywhere.
event.listen(Session, "before_commit", write_totals, insert=True)
event.listen(Session, "after_soft_rollback", QUEUE.discard)
event.listen(Session, "after_transaction_create", QUEUE.mark_savepoint)
event.listen(Session, "after_transaction_end", QUEUE.forget)


def open_entries(
    session: Session,
    keys: Sequence[tuple[str, date]],
    *,
    memo: str | None = None,
    ids: Sequence[int] | None = None,
) -> dict[tuple[str, date], int]:
    """One entry per (kind, business date) of `keys` (checked kinds), set-based, without
    lines yet: their ids by key. A batch then writes its lines with `add_lines`. `ids`:
    the entries' ids, reserved beforehand (`db.bulk.reserve_ids`), one per key."""
    if not keys:
        return {}
    rows = [{"kind": ledger.check_kind(kind), "occurred_on": on, "memo": memo} for kind, on in keys]
    if ids is not None:
        session.execute(
            insert(JournalEntry), [{"id": i, **row} for i, row in zip(ids, rows, strict=True)]
        )
        return dict(zip(keys, ids, strict=True))
    new_ids = session.scalars(
        insert(JournalEntry).returning(JournalEntry.id, sort_by_parameter_order=True), rows
    ).all()
    return dict(zip(keys, new_ids, strict=True))


def add_lines(
    session: Session,
    lines: Sequence[Mapping[str, Any]],
    entries: Mapping[tuple[str, date], int],
) -> None:
    """Write a batch's `lines` (dicts of journal_lines' columns, each entry's legs checked
    balanced by the caller) of the `entries` opened by `open_entries`, set-based, and add
    them to the day totals. Flushed, not committed."""
    key_of = {entry_id: key for key, entry_id in entries.items()}
    insert_rows(session, LINES, lines)
    add_to_totals(
        session,
        (
            ((key_of[line["entry_id"]][1], line["account"], line["currency"],
              key_of[line["entry_id"]][0]), line["amount"])
            for line in lines
        ),
    )  # fmt: skip


def open_entry(
    session: Session,
    kind: str,
    occurred_on: date,
    *,
    memo: str | None = None,
    job_run_id: int | None = None,
) -> JournalEntry:
    """An entry of a checked kind, flushed (it has an id) and without lines yet: a
    set-based batch points its rows at it, then adds its legs with `add_legs`."""
    entry = JournalEntry(
        kind=ledger.check_kind(kind), occurred_on=occurred_on, memo=memo, job_run_id=job_run_id
    )
    session.add(entry)
    session.flush()
    return entry


def add_legs(session: Session, entry_id: int, postings: Iterable[Posting]) -> None:
    """The entry's balanced legs (checked here on every database; on PostgreSQL also by a
    deferred constraint trigger at commit). Flushed, not committed."""
    legs = ledger.check_entry(postings)
    session.add_all(
        JournalLine(
            entry_id=entry_id,
            account=leg.account,
            currency=leg.currency,
            amount=leg.amount,
            invoice_id=leg.invoice_id,
            payment_id=leg.payment_id,
            policyholder_id=leg.policyholder_id,
        )
        for leg in legs
    )
    session.flush()
    entry = session.get(JournalEntry, entry_id)
    assert entry is not None
    add_to_totals(
        session,
        (((entry.occurred_on, leg.account, leg.currency, entry.kind), leg.amount) for leg in legs),
    )


def post(
    session: Session,
    kind: str,
    occurred_on: date,
    postings: Iterable[Posting],
    *,
    memo: str | None = None,
    job_run_id: int | None = None,
) -> JournalEntry:
    """Write one balanced entry of a checked kind. Flushed, not committed."""
    legs = ledger.check_entry(postings)
    entry = open_entry(session, kind, occurred_on, memo=memo, job_run_id=job_run_id)
    add_legs(session, entry.id, legs)
    return entry


# The lines summed per day, account, currency and kind: what journal_totals must hold.
_SUMS = (
    select(
        JournalEntry.occurred_on,
        JournalLine.account,
        JournalLine.currency,
        JournalEntry.kind,
        func.sum(JournalLine.amount).label("amount"),
    )
    .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
    .group_by(
        JournalEntry.occurred_on, JournalLine.account, JournalLine.currency, JournalEntry.kind
    )
)


def rebuild_totals(connection: Connection) -> None:
    """Derive journal_totals from the lines, set-based: the migration's back-fill, and a
    benchmark's seed that wrote its lines with SQL (the one piece of code for both)."""
    connection.execute(TOTALS.delete())
    connection.execute(
        insert(TOTALS).from_select(
            ["occurred_on", "account", "currency", "kind", "amount"],
            _SUMS,
        )
    )


def totals_differences(session: Session) -> list[tuple[TotalKey, int, int]]:
    """Every (key, lines' sum, total) where journal_totals disagrees with the lines (a
    missing row is 0), in key order: empty when the pre-aggregate is right."""
    lines = {
        (row.occurred_on, row.account, row.currency, row.kind): int(row.amount)
        for row in session.execute(_SUMS)
    }
    totals = {
        (row.occurred_on, row.account, row.currency, row.kind): int(row.amount)
        for row in session.execute(select(TOTALS))
    }
    return [
        (key, lines.get(key, 0), totals.get(key, 0))
        for key in sorted(set(lines) | set(totals))
        if lines.get(key, 0) != totals.get(key, 0)
    ]
