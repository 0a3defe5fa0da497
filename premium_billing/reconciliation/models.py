"""Bank statements and their lines, learned payer links, reconciliation runs, the suspense
queue's candidates, and Stripe payouts matched to bank deposits (issue 6)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from premium_billing.db.base import Base, Id
from premium_billing.db.types import utcnow

LINE_KINDS = ("payment", "return", "debit", "return_credit", "payout_deposit")


class BankStatement(Base):
    """One imported file (its SHA-256 is unique: the same file twice creates nothing new)."""

    __tablename__ = "bank_statements"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    format: Mapped[str] = mapped_column(String(10))
    filename: Mapped[str | None] = mapped_column(String(255))
    account: Mapped[str | None] = mapped_column(String(100))
    currency: Mapped[str | None] = mapped_column(String(3))
    opening_balance: Mapped[int | None] = mapped_column(BigInteger)
    closing_balance: Mapped[int | None] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(Integer, default=0)
    payments_created: Mapped[int] = mapped_column(Integer, default=0)
    duplicates_skipped: Mapped[int] = mapped_column(Integer, default=0)
    returns: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BankLine(Base):
    """One booked movement of a statement. (account, bank_reference) is unique: the same
    line in a later, overlapping file is skipped. `kind` says what it became."""

    __tablename__ = "bank_lines"
    __table_args__ = (
        UniqueConstraint("account", "bank_reference"),
        CheckConstraint("kind IN (" + ",".join(repr(k) for k in LINE_KINDS) + ")", name="kind"),
        Index("ix_bank_lines_statement_id", "statement_id"),
        Index("ix_bank_lines_payment_id", "payment_id"),
        Index("ix_bank_lines_booking_date", "booking_date"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("bank_statements.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    # '' when the file names no account: NULLs would not be equal in the unique constraint.
    account: Mapped[str] = mapped_column(String(100))
    bank_reference: Mapped[str] = mapped_column(String(255))
    booking_date: Mapped[date] = mapped_column(Date)
    value_date: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    payer_name: Mapped[str | None] = mapped_column(String(200))
    payer_account: Mapped[str | None] = mapped_column(String(100))
    reference: Mapped[str | None] = mapped_column(String(500))
    is_return: Mapped[bool] = mapped_column(Boolean, default=False)
    return_reason: Mapped[str | None] = mapped_column(String(200))
    bank_transaction_code: Mapped[str | None] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    # The payment a credit created, or the payment a return reversed.
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))


class PayerLink(Base):
    """A normalised bank account or payer name a confirmed (manual) match tied to a
    policyholder; the matcher trusts it with an exact amount."""

    __tablename__ = "payer_links"
    __table_args__ = (
        UniqueConstraint("key", "policyholder_id"),
        CheckConstraint("kind IN ('payer_account','payer_name')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReconciliationRun(Base):
    """One pass of the matcher over the unapplied payments: what it examined and did."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (CheckConstraint("status IN ('running','succeeded','failed')", name="status"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    as_of: Mapped[date] = mapped_column(Date)
    trigger: Mapped[str] = mapped_column(String(20), default="api")
    status: Mapped[str] = mapped_column(String(20), default="running")
    examined: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    partially_matched: Mapped[int] = mapped_column(Integer, default=0)
    suspense: Mapped[int] = mapped_column(Integer, default=0)
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class SuspenseItem(Base):
    """A payment the matcher left unapplied: why, and its ranked candidates. `held`: a match
    of it was undone by hand, so runs no longer auto-post it (it waits for a person)."""

    __tablename__ = "suspense_items"

    payment_id: Mapped[int] = mapped_column(
        ForeignKey("payments.id"), primary_key=True, autoincrement=False
    )
    run_id: Mapped[int | None] = mapped_column(ForeignKey("reconciliation_runs.id"))
    outcome: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
