"""SQLAlchemy 2 typed models. The schema changes only through Alembic migrations."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Sequence,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from premium_billing.db.base import Base, Id, Timestamps

# What `reports.aging` counts as owed now (`invoicing.rules.PAYABLE_STATUSES`, amount due).
OWED = "status IN ('open','partially_paid') AND amount_due > 0"


class InvoiceQueueItem(Base):
    """A scheduled installment not yet invoiced, by due date: what the invoicing job takes.

    Kept by database triggers on `installments` (insert, void, un-void); the invoicing job
    deletes the rows it invoices. Deleting from this narrow table is far cheaper than
    updating the installment row and its indexes, which is what lets a million invoices be
    issued close to the speed of a bare INSERT … SELECT.
    """

    __tablename__ = "invoice_queue"
    __table_args__ = (Index("ix_invoice_queue_due_date", "due_date", "installment_id"),)

    installment_id: Mapped[int] = mapped_column(
        ForeignKey("installments.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    due_date: Mapped[date] = mapped_column(Date)


class Invoice(Timestamps, Base):
    """One invoice per installment (unique), numbered INV-YYYY-NNNNNN in issue order.

    `lines` is written at issue: [{kind, description, amount}] with kind in premium,
    installment_fee, policy_fee, adjustment, cancellation (a settlement's final invoice),
    credit (a credit balance applied); a credit note adds a `premium_credit` line (negative:
    `total` falls with it). Amount due = total − paid − written off.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open','partially_paid','paid','void','written_off')", name="status"
        ),
        CheckConstraint("total >= 0", name="total"),
        CheckConstraint(
            "amount_paid >= 0 AND amount_written_off >= 0 "
            "AND amount_paid + amount_written_off <= total",
            name="not_over_settled",
        ),
        CheckConstraint(
            "(status = 'void' AND amount_due = 0) OR "
            "(status <> 'void' AND amount_due = total - amount_paid - amount_written_off)",
            name="due",
        ),
        Index("ix_invoices_policy_id", "policy_id"),
        Index("ix_invoices_policyholder_status", "policyholder_id", "status"),
        Index("ix_invoices_status_due_date", "status", "due_date"),
        # Collections reads a policy's open invoices (oldest unpaid first).
        Index(
            "ix_invoices_open_policy",
            "policy_id",
            "due_date",
            postgresql_where=text("status IN ('open','partially_paid')"),
            sqlite_where=text("status IN ('open','partially_paid')"),
        ),
        # The aging's totals of today (KPIs, the dashboard): what is owed per currency and
        # due date, read from this index alone on PostgreSQL (the open tenth of the book).
        Index(
            "ix_invoices_owed",
            "currency",
            "due_date",
            postgresql_include=["amount_due", "issue_date"],
            postgresql_where=text(OWED),
            sqlite_where=text(OWED),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    number_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    installment_id: Mapped[int | None] = mapped_column(ForeignKey("installments.id"), unique=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id"))
    currency: Mapped[str] = mapped_column(String(3))
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_written_off: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    # Premium taken off by credit notes (`payments.models.InvoiceCredit`): `total` is what
    # is billed net of them, so the amount billed at issue is total + amount_credited.
    amount_credited: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(20), default="open")
    void_reason: Mapped[str | None] = mapped_column(Text)
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"))
    # The journal entry that recorded the issue (one entry per invoicing batch).
    issue_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), index=True)


# Invoice numbers on PostgreSQL (SQLite, with one writer at a time, counts instead).
invoice_number_seq = Sequence("invoice_number_seq", metadata=Base.metadata)
