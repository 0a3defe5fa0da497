"""SQLAlchemy 2 typed models. The schema changes only through Alembic migrations."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from premium_billing.db.base import Base, Id
from premium_billing.db.types import utcnow


class JournalEntry(Base):
    """A double-entry journal entry: its lines sum to zero in each currency."""

    __tablename__ = "journal_entries"
    __table_args__ = (
        Index("ix_journal_entries_kind_occurred_on", "kind", "occurred_on"),
        # The aging as of a past date: the legs posted after it (reports.aging).
        Index("ix_journal_entries_occurred_on", "occurred_on"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    occurred_on: Mapped[date] = mapped_column(Date)
    memo: Mapped[str | None] = mapped_column(Text)
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lines: Mapped[list[JournalLine]] = relationship(back_populates="entry")


class JournalLine(Base):
    """One leg: a signed amount (debit > 0, credit < 0) on an account, in a currency."""

    __tablename__ = "journal_lines"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="nonzero"),
        Index("ix_journal_lines_account_currency", "account", "currency"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    account: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    policyholder_id: Mapped[int | None] = mapped_column(ForeignKey("policyholders.id"))

    entry: Mapped[JournalEntry] = relationship(back_populates="lines")


class JournalTotal(Base):
    """The journal's lines summed per business day, account, currency and entry kind: a
    pre-aggregate kept by `ledger.journal` (the one writer of lines) in each entry's own
    transaction, so that a period's figures read a row per day and account instead of every
    line (`reports.kpis`). `ledger check` recomputes it from the lines."""

    __tablename__ = "journal_totals"

    occurred_on: Mapped[date] = mapped_column(Date, primary_key=True)
    account: Mapped[str] = mapped_column(String(40), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
