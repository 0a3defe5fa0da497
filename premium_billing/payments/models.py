"""Payments, allocations, refunds, write-offs and the audit trail (issue 4)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from premium_billing.db.base import Base, Id, Timestamps
from premium_billing.db.types import utcnow

PAYMENT_METHODS = ("card", "ach", "bank_transfer", "check", "cash")


PAYMENT_SOURCES = ("stripe", "bank_statement", "manual")


PAYMENT_STATUSES = ("unapplied", "partially_applied", "applied", "refunded", "reversed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({','.join(repr(v) for v in values)})"


class Payment(Timestamps, Base):
    """Money received once (unique external id per source). Amount unapplied = amount −
    allocated − refunded − reversed; it is suspense when the payer is unknown, the payer's
    credit balance when known. The amount columns change only by SQL increments."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        CheckConstraint(_in("method", PAYMENT_METHODS), name="method"),
        CheckConstraint(_in("source", PAYMENT_SOURCES), name="source"),
        CheckConstraint(_in("status", PAYMENT_STATUSES), name="status"),
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint(
            "amount_allocated >= 0 AND amount_refunded >= 0 AND amount_reversed >= 0 "
            "AND amount_unapplied >= 0",
            name="not_over_allocated",
        ),
        CheckConstraint(
            "amount_unapplied = amount - amount_allocated - amount_refunded - amount_reversed",
            name="unapplied",
        ),
        Index("ix_payments_status", "status"),
        # A policyholder's payments, newest first: the portal's history, the statement.
        Index("ix_payments_policyholder_received", "policyholder_id", "received_on"),
        # Credit balances: the one query `apply_credit_balances` runs at every invoicing batch.
        Index(
            "ix_payments_credit",
            "policyholder_id",
            "currency",
            postgresql_where=text("amount_unapplied > 0 AND policyholder_id IS NOT NULL"),
            sqlite_where=text("amount_unapplied > 0 AND policyholder_id IS NOT NULL"),
        ),
        # Suspense now (payer unknown, money held): the KPIs' suspense as of a day starts
        # from these (`reports.kpis`), not from every suspense leg ever posted.
        Index(
            "ix_payments_suspense",
            "currency",
            postgresql_include=["amount_unapplied"],
            postgresql_where=text("amount_unapplied > 0 AND policyholder_id IS NULL"),
            sqlite_where=text("amount_unapplied > 0 AND policyholder_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    received_on: Mapped[date] = mapped_column(Date)
    payer_name: Mapped[str | None] = mapped_column(String(200))
    reference: Mapped[str | None] = mapped_column(String(500))
    policyholder_id: Mapped[int | None] = mapped_column(ForeignKey("policyholders.id"))
    # True when a match (not the payer) named the policyholder: undoing the match forgets it.
    payer_from_match: Mapped[bool] = mapped_column(Boolean, default=False)
    amount_allocated: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_unapplied: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="unapplied")
    match_rule: Mapped[str | None] = mapped_column(String(50))
    match_evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reversed_on: Mapped[date | None] = mapped_column(Date)
    receipt_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))


class Allocation(Base):
    """Money of a payment applied to an invoice. Append-only: an undo is a negative row,
    so the net allocation of (payment, invoice) is the sum of its rows."""

    __tablename__ = "allocations"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="nonzero"),
        CheckConstraint(
            _in("reason", ("manual", "match", "credit", "undo", "refund", "reversal")),
            name="reason",
        ),
        Index("ix_allocations_payment_id", "payment_id"),
        Index("ix_allocations_invoice_id", "invoice_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(20))
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


REFUND_STATUSES = ("pending", "succeeded", "failed", "cancelled")
REFUND_KINDS = ("cancellation", "overpayment", "manual")
REFUND_CHANNELS = ("stripe", "check", "transfer")


class Refund(Base):
    """Money owed back to a payer (refunds payable), paid out by Stripe or the bank.

    `kind`: why (a cancellation's settlement, money not applied to any invoice, by hand);
    `channel`: how it is paid (back through Stripe when the money came from Stripe, else by
    check or transfer). `pending` until paid: `succeeded` when Stripe's webhook says so or
    finance marks it paid (refunds payable → cash: `paid_entry_id`); `failed` when Stripe
    could not pay it (still owed: finance pays it another way); `cancelled` when a
    reinstatement took it back before it was paid (the money is the payer's credit again)."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount"),
        CheckConstraint(_in("status", REFUND_STATUSES), name="status"),
        CheckConstraint(_in("kind", REFUND_KINDS), name="kind"),
        CheckConstraint(_in("channel", REFUND_CHANNELS), name="channel"),
        Index("ix_refunds_payment_id", "payment_id"),
        Index("ix_refunds_status", "status"),
        Index("ix_refunds_policyholder_id", "policyholder_id"),
        Index("ix_refunds_cancellation_id", "cancellation_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(20), default="manual")
    channel: Mapped[str] = mapped_column(String(20), default="transfer")
    # The payer when the refund was owed (the list's filter; a payment's payer may change).
    policyholder_id: Mapped[int | None] = mapped_column(ForeignKey("policyholders.id"))
    # The cancellation (or lapse) whose settlement owed it: a reinstatement reverses it.
    cancellation_id: Mapped[int | None] = mapped_column(ForeignKey("cancellations.id"))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    paid_on: Mapped[date | None] = mapped_column(Date)
    paid_method: Mapped[str | None] = mapped_column(String(20))
    paid_reference: Mapped[str | None] = mapped_column(String(255))
    # The entry that paid it out (refunds payable → Stripe clearing or the bank).
    paid_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))
    cancelled_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)


class WriteOff(Base):
    """An invoice remainder written off (kind manual or tolerance); a reversal is a negative
    row pointing at what it reverses."""

    __tablename__ = "write_offs"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="nonzero"),
        CheckConstraint("kind IN ('manual','tolerance','reversal')", name="kind"),
        Index("ix_write_offs_invoice_id", "invoice_id"),
        Index("ix_write_offs_payment_id", "payment_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    # The payment whose allocation left the remainder (tolerance write-offs).
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("write_offs.id"), unique=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


CREDIT_KINDS = ("cancellation", "lapse", "endorsement", "reversal")


class InvoiceCredit(Base):
    """Billed premium taken off an invoice (a credit note): the invoice's total and amount
    due fall by `amount` (its `amount_credited` rises). A cancellation or lapse credits the
    premium it did not earn, an endorsement a premium cut; `payment_id`: the payment whose
    allocation to the invoice was taken back for it (refunded, or left as the payer's
    credit). A reversal (a reinstatement) is a negative row pointing at what it reverses."""

    __tablename__ = "invoice_credits"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="nonzero"),
        CheckConstraint(_in("kind", CREDIT_KINDS), name="kind"),
        Index("ix_invoice_credits_invoice_id", "invoice_id"),
        Index("ix_invoice_credits_cancellation_id", "cancellation_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    cancellation_id: Mapped[int | None] = mapped_column(ForeignKey("cancellations.id"))
    endorsement_id: Mapped[int | None] = mapped_column(ForeignKey("endorsements.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("invoice_credits.id"), unique=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"))
    credited_on: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# The audit trail's session listeners: installed wherever the models are loaded.
