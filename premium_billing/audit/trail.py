"""The audit trail: every change, who made it (API key, job, webhook, CLI), before and after.

ORM changes are collected after each flush by session events; set-based SQL is recorded
with `record`. The collected rows are appended at commit, hash-chained: appends serialize on
the one `audit_chain_head` row (a row lock on PostgreSQL, the write lock on SQLite), so the
chain never forks, and the head anchors the tail. `verify` names the first bad row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Connection, event, insert, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from premium_billing.actor import current_actor
from premium_billing.audit.chain import GENESIS, Break, ChainRow, first_break, row_hash
from premium_billing.audit.models import AuditChainHead, AuditLog
from premium_billing.db.queued import TransactionQueue
from premium_billing.db.types import utcnow

QUEUE = TransactionQueue("audit_pending")  # the rows collected until the commit

# Not audited row by row: the trail itself, replayable request caches, the scheduler's
# own table; journal lines are recorded once per entry (see _collect).
SKIPPED = {"audit_log", "audit_chain_head", "idempotency_records", "apscheduler_jobs"}
REDACTED = {"api_keys": {"key_hash"}, "dashboard_users": {"password_hash"}}
# A change of these columns alone is not worth a row.
NOISE = {"updated_at"}


def jsonable(value: Any) -> Any:
    """A value as JSON that reads back identical (dates as ISO text)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Fraction | Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def record(
    session: Session,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Add a row to the trail, written with the transaction's commit (for set-based SQL:
    one call per batch, e.g. `record(s, "issued", "invoices", None, after={"ids": [...]})`)."""
    actor = current_actor()
    session.connection()  # inside a transaction, so that a rollback discards the row
    QUEUE.items(session).append(
        {
            "occurred_at": utcnow(),
            "actor_kind": actor.kind,
            "actor_id": actor.id,
            "actor_name": actor.name,
            "request_id": actor.request_id,
            "action": action,
            "entity": entity,
            "entity_id": None if entity_id is None else str(entity_id),
            "before": None if before is None else jsonable(before),
            "after": None if after is None else jsonable(after),
        }
    )


def _columns(obj: Any) -> list[str]:
    return [attr.key for attr in inspect(obj).mapper.column_attrs]


def _values(obj: Any, table: str) -> dict[str, Any]:
    # Only what is loaded: reading an expired attribute here would emit SQL mid-flush.
    loaded = inspect(obj).dict
    hidden = REDACTED.get(table, set())
    return {
        key: ("[redacted]" if key in hidden else loaded[key])
        for key in _columns(obj)
        if key in loaded
    }


def _collect(session: Session, _flush_context: Any) -> None:
    lines_by_entry: dict[int, list[list[Any]]] = {}
    for obj in list(session.new):
        table = obj.__table__.name
        if table == "journal_lines":
            lines_by_entry.setdefault(obj.entry_id, []).append(
                [
                    obj.account,
                    obj.currency,
                    obj.amount,
                    obj.invoice_id,
                    obj.payment_id,
                    obj.policyholder_id,
                ]
            )
            continue
        if table in SKIPPED:
            continue
        values = _values(obj, table)
        record(session, "create", table, values.get("id"), after=values)
    for entry_id, lines in sorted(lines_by_entry.items()):
        record(session, "create", "journal_lines", entry_id, after={"lines": lines})
    for obj in list(session.dirty):
        table = obj.__table__.name
        if table in SKIPPED or not session.is_modified(obj, include_collections=False):
            continue
        state = inspect(obj)
        hidden = REDACTED.get(table, set())
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        for key in _columns(obj):
            history = state.attrs[key].history
            if not history.has_changes() or key in NOISE:
                continue
            old = history.deleted[0] if history.deleted else None
            new = history.added[0] if history.added else None
            before[key] = "[redacted]" if key in hidden else old
            after[key] = "[redacted]" if key in hidden else new
        if after:
            record(session, "update", table, state.identity[0] if state.identity else None,
                   before=before, after=after)  # fmt: skip
    for obj in list(session.deleted):
        table = obj.__table__.name
        if table in SKIPPED:
            continue
        values = _values(obj, table)
        record(session, "delete", table, values.get("id"), before=values)


def _write_pending(session: Session) -> None:
    if session.new or session.dirty or session.deleted:
        session.flush()
    pending = QUEUE.take(session)
    if pending:
        append(session.connection(), pending)


LISTENERS = (
    ("after_flush", _collect),
    ("before_commit", _write_pending),
    ("after_soft_rollback", QUEUE.discard),
    ("after_transaction_create", QUEUE.mark_savepoint),
)


def install() -> None:
    """Record every session's changes from now on (the app's bootstrap calls it once; a
    second call changes nothing)."""
    for name, listener in LISTENERS:
        if not event.contains(Session, name, listener):
            event.listen(Session, name, listener)


def _content(seq: int, row: dict[str, Any]) -> dict[str, Any]:
    occurred_at = row["occurred_at"]
    return {
        "seq": seq,
        "occurred_at": occurred_at.isoformat()
        if isinstance(occurred_at, datetime)
        else occurred_at,
        "actor_kind": row["actor_kind"],
        "actor_id": row["actor_id"],
        "actor_name": row["actor_name"],
        "request_id": row["request_id"],
        "action": row["action"],
        "entity": row["entity"],
        "entity_id": row["entity_id"],
        "before": row["before"],
        "after": row["after"],
    }


def _lock_head(conn: Connection) -> tuple[int, str]:
    """Take the chain head's lock for the rest of the transaction; its (seq, hash)."""
    touch = update(AuditChainHead).where(AuditChainHead.id == 1).values(seq=AuditChainHead.seq)
    if conn.execute(touch).rowcount == 0:
        values = {"id": 1, "seq": 0, "hash": GENESIS}
        make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(make(AuditChainHead).values(**values).on_conflict_do_nothing())
        conn.execute(touch)
    seq, hash_ = conn.execute(
        select(AuditChainHead.seq, AuditChainHead.hash).where(AuditChainHead.id == 1)
    ).one()
    return int(seq), str(hash_)


def append(conn: Connection, pending: list[dict[str, Any]]) -> None:
    """Append rows to the chain inside the caller's transaction."""
    seq, prev = _lock_head(conn)
    rows = []
    for row in pending:
        seq += 1
        digest = row_hash(prev, _content(seq, row))
        rows.append({**row, "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    conn.execute(insert(AuditLog), rows)
    conn.execute(update(AuditChainHead).where(AuditChainHead.id == 1).values(seq=seq, hash=prev))


@dataclass(frozen=True)
class Verification:
    rows: int
    problem: Break | None


def _chain_rows(session: Session, counter: list[int]) -> Iterator[ChainRow]:
    stmt = select(AuditLog).order_by(AuditLog.seq).execution_options(yield_per=2000)
    result = session.scalars(stmt)
    try:
        for row in result:
            counter[0] += 1
            content = _content(
                row.seq,
                {
                    "occurred_at": row.occurred_at,
                    "actor_kind": row.actor_kind,
                    "actor_id": row.actor_id,
                    "actor_name": row.actor_name,
                    "request_id": row.request_id,
                    "action": row.action,
                    "entity": row.entity,
                    "entity_id": row.entity_id,
                    "before": row.before,
                    "after": row.after,
                },
            )
            yield ChainRow(row.id, row.seq, content, row.prev_hash, row.hash)
            session.expunge(row)
    finally:
        result.close()


def verify(session: Session) -> Verification:
    """Check every row's hash and link, in sequence order, and the head."""
    head = session.execute(select(AuditChainHead.seq, AuditChainHead.hash)).first()
    counter = [0]
    rows = _chain_rows(session, counter)
    try:
        problem = first_break(
            rows,
            head_seq=head.seq if head else 0,
            head_hash=head.hash if head else GENESIS,
        )
    finally:
        rows.close()
    return Verification(counter[0], problem)


def trail(session: Session, entity: str, entity_id: object) -> list[AuditLog]:
    """The rows about one entity, oldest first."""
    return list(
        session.scalars(
            select(AuditLog)
            .where(AuditLog.entity == entity, AuditLog.entity_id == str(entity_id))
            .order_by(AuditLog.seq)
        )
    )
