"""Issuing invoices for installments, set-based, in batches that commit.

One invoice per installment is guaranteed by the unique `invoices.installment_id`. The job
takes its work from `invoice_queue` (kept by triggers on installments) and deletes what it
invoices in the same statement; an installment is invoiced when its invoice exists. On
PostgreSQL each batch takes its rows with `FOR UPDATE SKIP LOCKED`, so several processes
share the work, and a killed run leaves only whole batches behind: running again finishes
the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, bindparam, select, text
from sqlalchemy.orm import Session

from premium_billing.audit import trail as audit
from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.db.hooks import INVOICES_ISSUED, publish
from premium_billing.db.types import UTCDateTime, utcnow
from premium_billing.errors import Conflict, NotFound
from premium_billing.invoicing.journal import record_invoice_issued
from premium_billing.invoicing.models import Invoice
from premium_billing.ledger import journal
from premium_billing.ledger import rules as ledger
from premium_billing.policies.models import Installment

log = logging.getLogger(__name__)

INVOICE_NUMBER_DIGITS = 6

# The invoice row of an installment: number, amounts and lines, shared by both dialects.
# {lines} is the dialect's JSON constructor; {number} the dialect's number expression.
_SELECT_INVOICE_ROWS = """
SELECT {number_seq} AS number_seq,
       {number} AS number,
       i.id, i.policy_id, p.policyholder_id, p.currency, :as_of, i.due_date,
       CASE
         WHEN i.kind = 'adjustment' THEN {lines_adjustment}
         WHEN i.fee = 0 THEN {lines_premium}
         WHEN i.fee = p.installment_fee THEN {lines_premium_fee}
         WHEN p.installment_fee = 0 THEN {lines_premium_policy_fee}
         ELSE {lines_all}
       END,
       i.amount + i.fee, 0, 0, i.amount + i.fee, 'open', :run_id, :entry_id, :now, :now
"""

_INSERT_COLUMNS = (
    "number_seq, number, installment_id, policy_id, policyholder_id, currency, issue_date, "
    "due_date, lines, total, amount_paid, amount_written_off, amount_due, status, job_run_id, "
    "issue_entry_id, created_at, updated_at"
)


def _line(fn: str, kind: str, description: str, amount: str) -> str:
    return f"{fn}('kind', '{kind}', 'description', {description}, 'amount', {amount})"


def _lines_sql(obj: str, arr: str, concat: str) -> dict[str, str]:
    installment = f"'Installment ' {concat} i.number {concat} ', ' {concat} p.policy_number"
    premium = _line(obj, "premium", installment, "i.amount")
    adjustment = _line(
        obj, "adjustment", f"'Endorsement adjustment, ' {concat} p.policy_number", "i.amount"
    )
    inst_fee = _line(obj, "installment_fee", "'Installment fee'", "p.installment_fee")
    only_fee = _line(obj, "installment_fee", "'Installment fee'", "i.fee")
    pol_fee_all = _line(obj, "policy_fee", "'Policy fee'", "i.fee")
    pol_fee = _line(obj, "policy_fee", "'Policy fee'", "i.fee - p.installment_fee")
    return {
        "lines_adjustment": f"{arr}({adjustment})",
        "lines_premium": f"{arr}({premium})",
        "lines_premium_fee": f"{arr}({premium}, {only_fee})",
        "lines_premium_policy_fee": f"{arr}({premium}, {pol_fee_all})",
        "lines_all": f"{arr}({premium}, {inst_fee}, {pol_fee})",
    }


# lpad would cut a longer number down to the width: pad only numbers that are shorter.
_PG_NUMBER = (
    "'INV-' || to_char(CAST(:as_of AS date), 'YYYY') || '-' || "
    f"lpad(CAST(s.seq AS text), greatest({INVOICE_NUMBER_DIGITS}, "
    "length(CAST(s.seq AS text))), '0')"
)

_PG_BATCH = (
    """
WITH batch AS (
    -- Take the next installments from the queue in due-date order; SKIP LOCKED lets
    -- another process take the next ones meanwhile.
    DELETE FROM invoice_queue
    WHERE installment_id IN (
        SELECT q.installment_id FROM invoice_queue q
        WHERE q.due_date <= :horizon {only}
        ORDER BY q.due_date, q.installment_id
        LIMIT :batch_size
        FOR UPDATE SKIP LOCKED
    )
    RETURNING installment_id AS id
),
numbered AS (
    SELECT b.id, nextval('invoice_number_seq') AS seq
    FROM (SELECT id FROM batch ORDER BY id) b
),
inserted AS (
    INSERT INTO invoices ("""
    + _INSERT_COLUMNS
    + """)
    """
    + _SELECT_INVOICE_ROWS.format(
        number_seq="s.seq",
        number=_PG_NUMBER,
        **_lines_sql("json_build_object", "json_build_array", "||"),
    )
    + """
    FROM numbered s
    JOIN installments i ON i.id = s.id
    JOIN policies p ON p.id = i.policy_id
    ON CONFLICT (installment_id) DO NOTHING
    RETURNING id
)
SELECT id FROM inserted
"""
)

_SQLITE_NUMBER = (
    "'INV-' || strftime('%Y', :as_of) || '-' || "
    f"printf('%0{INVOICE_NUMBER_DIGITS}d', :base_seq + row_number() OVER (ORDER BY i.id))"
)

_SQLITE_SELECT_BATCH = """
SELECT q.installment_id FROM invoice_queue q
WHERE q.due_date <= :horizon {only}
ORDER BY q.due_date, q.installment_id
LIMIT :batch_size
"""

_SQLITE_INSERT = (
    "INSERT INTO invoices ("
    + _INSERT_COLUMNS
    + ")\n"
    + _SELECT_INVOICE_ROWS.format(
        number_seq=":base_seq + row_number() OVER (ORDER BY i.id)",
        number=_SQLITE_NUMBER,
        **_lines_sql("json_object", "json_array", "||"),
    )
    + """
FROM installments i
JOIN policies p ON p.id = i.policy_id
WHERE i.id IN (SELECT value FROM json_each(:ids))
ORDER BY i.id
ON CONFLICT (installment_id) DO NOTHING
RETURNING id
"""
)


@dataclass
class IssueStats:
    as_of: date
    horizon: date
    invoices_issued: int = 0
    batches: int = 0
    credits_applied: int = 0
    amount_by_currency: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "horizon": self.horizon.isoformat(),
            "invoices_issued": self.invoices_issued,
            "batches": self.batches,
            "credits_applied": self.credits_applied,
            "amount_by_currency": dict(sorted(self.amount_by_currency.items())),
        }


def issue_invoices(
    db: Database,
    as_of: date,
    lead_days: int,
    *,
    batch_size: int = 5000,
    job_run_id: int | None = None,
    installment_ids: Sequence[int] | None = None,
    progress: Callable[[int], None] | None = None,
    settings: Settings | None = None,
) -> IssueStats:
    """Invoice every scheduled installment due on or before as_of + lead_days.

    `installment_ids` limits the run to those installments (e.g. a renewal's first one,
    whatever its due date: pass a far horizon via lead_days).
    """
    horizon = as_of + timedelta(days=lead_days)
    stats = IssueStats(as_of=as_of, horizon=horizon)
    while True:
        with db.session() as session:
            ids, entry_id = _issue_batch(
                session, db.dialect, as_of, horizon, batch_size, job_run_id, installment_ids
            )
            if not ids:
                session.rollback()
                break
            _journal_batch(session, entry_id, stats)
            # The payers' credit balances settle the new invoices (the payments feature).
            stats.credits_applied += sum(
                publish(session, INVOICES_ISSUED, invoice_ids=ids, settings=settings)
            )
            # One audit row per batch: the batch is exactly the invoices of this entry.
            audit.record(
                session,
                "issued",
                "invoices",
                None,
                after={"issue_entry_id": entry_id, "count": len(ids), "job_run_id": job_run_id},
            )
            session.commit()
        stats.invoices_issued += len(ids)
        stats.batches += 1
        if progress is not None:
            progress(len(ids))
    log.info("issue_invoices done", extra={"stats": stats.as_dict()})
    return stats


def _issue_batch(
    session: Session,
    dialect: str,
    as_of: date,
    horizon: date,
    batch_size: int,
    job_run_id: int | None,
    only_ids: Sequence[int] | None,
) -> tuple[list[int], int]:
    only = "AND q.installment_id IN (SELECT value FROM json_each(:only_ids))" if only_ids else ""
    params: dict[str, Any] = {
        "as_of": as_of,
        "horizon": horizon,
        "batch_size": batch_size,
        "run_id": job_run_id,
        "now": utcnow(),
    }
    # A placeholder entry for the batch's invoices to point at; its lines follow.
    entry = journal.open_entry(
        session, ledger.INVOICE_ISSUED, as_of, memo="invoices issued", job_run_id=job_run_id
    )
    params["entry_id"] = entry.id
    if dialect == "postgresql":
        if only_ids:
            only = "AND q.installment_id = ANY(:only_ids)"
            params["only_ids"] = list(only_ids)
        rows = session.execute(_typed(_PG_BATCH.format(only=only)), params).scalars().all()
    else:
        import json

        if only_ids:
            params["only_ids"] = json.dumps(list(only_ids))
        ids = (
            session.execute(_typed(_SQLITE_SELECT_BATCH.format(only=only)), params).scalars().all()
        )
        if not ids:
            return [], entry.id
        session.execute(
            text(
                "DELETE FROM invoice_queue WHERE installment_id IN "
                "(SELECT value FROM json_each(:ids))"
            ),
            {"ids": json.dumps(list(ids))},
        )
        params["ids"] = json.dumps(list(ids))
        params["base_seq"] = session.execute(
            text("SELECT coalesce(max(number_seq), 0) FROM invoices")
        ).scalar_one()
        rows = session.execute(_typed(_SQLITE_INSERT), params).scalars().all()
    return list(rows), entry.id


def _typed(sql: str) -> Any:
    """Bind dates and timestamps with their column types on both dialects."""
    types = {"as_of": Date(), "horizon": Date(), "now": UTCDateTime()}
    binds = [bindparam(name, type_=t) for name, t in types.items() if f":{name}" in sql]
    return text(sql).bindparams(*binds)


def _journal_batch(session: Session, entry_id: int, stats: IssueStats) -> None:
    """Journal the batch: per currency, receivable debited and premium billed credited."""
    totals = session.execute(
        text(
            "SELECT currency, sum(total) FROM invoices WHERE issue_entry_id = :entry "
            "GROUP BY currency ORDER BY currency"
        ),
        {"entry": entry_id},
    ).all()
    billed: dict[str, int] = {}
    for currency, total in totals:
        stats.amount_by_currency[currency] = stats.amount_by_currency.get(currency, 0) + int(total)
        if int(total):
            billed[currency] = int(total)
    if billed:
        journal.add_legs(session, entry_id, ledger.invoice_issued(billed))


def get_invoice(session: Session, invoice_id: int, for_update: bool = False) -> Invoice:
    stmt = select(Invoice).where(Invoice.id == invoice_id)
    if for_update:
        stmt = stmt.with_for_update()
    invoice = session.scalar(stmt)
    if invoice is None:
        raise NotFound("invoice not found")
    return invoice


def void_invoice(session: Session, invoice_id: int, reason: str | None, on: date) -> Invoice:
    """Void an unpaid invoice: its receivable is reversed and its installment re-opened
    only if the policy is cancelled (otherwise the installment stays invoiced: voiding is
    a correction, not a reschedule)."""
    invoice = get_invoice(session, invoice_id, for_update=True)
    if invoice.status == "void":
        raise Conflict("the invoice is already void")
    if invoice.amount_paid > 0 or invoice.status not in ("open",):
        raise Conflict(
            f"only an open invoice with nothing paid can be voided (it is {invoice.status})"
        )
    if invoice.total:
        journal.post(
            session,
            ledger.INVOICE_VOIDED,
            on,
            ledger.invoice_voided(
                invoice.total, invoice.currency, invoice.id, invoice.policyholder_id
            ),
            memo=reason,
        )
    invoice.status = "void"
    invoice.void_reason = reason
    invoice.amount_due = 0
    session.commit()
    return invoice


def issue_one(
    session: Session,
    *,
    policy_id: int,
    policyholder_id: int,
    currency: str,
    lines: Sequence[dict[str, Any]],
    issue_date: date,
    due_date: date,
    settings: Settings | None = None,
) -> Invoice:
    """Issue one invoice now, outside the installment schedule (a cancellation's final
    invoice of earned but unbilled premium): numbered after the others, journaled as an
    `invoice_issued` entry of its own, and the payer's credit balance applied to it, as
    the invoicing job does. Flushed, not committed."""
    total = sum(int(line["amount"]) for line in lines)
    if session.get_bind().dialect.name == "postgresql":
        seq = int(session.execute(text("SELECT nextval('invoice_number_seq')")).scalar_one())
    else:
        seq = int(
            session.execute(
                text("SELECT coalesce(max(number_seq), 0) + 1 FROM invoices")
            ).scalar_one()
        )
    invoice = Invoice(
        number_seq=seq,
        number=f"INV-{issue_date.year}-{seq:0{INVOICE_NUMBER_DIGITS}d}",
        installment_id=None,
        policy_id=policy_id,
        policyholder_id=policyholder_id,
        currency=currency,
        issue_date=issue_date,
        due_date=due_date,
        lines=[dict(line) for line in lines],
        total=total,
        amount_paid=0,
        amount_written_off=0,
        amount_credited=0,
        amount_due=total,
        status="open",
    )
    session.add(invoice)
    session.flush()
    record_invoice_issued(session, [invoice], issue_date)
    publish(session, INVOICES_ISSUED, invoice_ids=[invoice.id], settings=settings)
    session.refresh(invoice)
    return invoice


def installment_invoice_ids(session: Session, installment_ids: Sequence[int]) -> dict[int, int]:
    rows = session.execute(
        select(Invoice.installment_id, Invoice.id).where(
            Invoice.installment_id.in_(list(installment_ids))
        )
    ).all()
    return {int(a): int(b) for a, b in rows}


__all__ = ["issue_invoices", "issue_one", "get_invoice", "void_invoice", "Installment"]
