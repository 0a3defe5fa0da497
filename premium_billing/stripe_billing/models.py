"""Stripe: the webhook inbox, what we know of each PaymentIntent, customers and saved cards,
outbound idempotency keys and autopay attempts (issue 5)."""

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
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from premium_billing.db.base import Base, Id
from premium_billing.db.types import utcnow

EVENT_STATUSES = ("queued", "processed", "ignored", "failed", "dead")


ATTEMPT_STATUSES = ("pending", "succeeded", "failed")


class StripeEvent(Base):
    """The webhook inbox: one row per Stripe event id (unique: a redelivery is a no-op).
    Written with Core statements (not audited row by row: the payload holds personal data)."""

    __tablename__ = "stripe_events"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ",".join(repr(s) for s in EVENT_STATUSES) + ")", name="status"
        ),
        Index("ix_stripe_events_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str | None] = mapped_column(String(255))
    livemode: Mapped[bool] = mapped_column(Boolean, default=False)
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    stripe_created_at: Mapped[datetime] = mapped_column()
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column()
    # Stripe's event time to the commit that posted the payment, for the KPIs.
    posting_latency_ms: Mapped[int | None] = mapped_column(BigInteger)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))


class StripePaymentState(Base):
    """Everything known about one PaymentIntent (and its charge), merged from events that
    may arrive in any order; the postings are brought to the state these facts imply."""

    __tablename__ = "stripe_payment_states"
    __table_args__ = (
        CheckConstraint("amount_refunded >= 0", name="amount_refunded"),
        Index("ix_stripe_payment_states_charge_id", "charge_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    payment_intent_id: Mapped[str] = mapped_column(String(255), unique=True)
    charge_id: Mapped[str | None] = mapped_column(String(255))
    succeeded: Mapped[bool] = mapped_column(Boolean, default=False)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    stripe_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    payer_name: Mapped[str | None] = mapped_column(String(200))
    customer_id: Mapped[str | None] = mapped_column(String(255))
    created_on: Mapped[date | None] = mapped_column(Date)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    dispute_id: Mapped[str | None] = mapped_column(String(255))
    dispute_amount: Mapped[int | None] = mapped_column(BigInteger)
    dispute_status: Mapped[str | None] = mapped_column(String(30))
    # What the dispute did to the money (facts that only grow; `rules.dispute_money`).
    dispute_funds_withdrawn: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    dispute_funds_reinstated: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # A dispute larger than its payment: why, and the business date it was seen.
    dispute_flag: Mapped[str | None] = mapped_column(Text)
    dispute_flagged_on: Mapped[date | None] = mapped_column(Date)
    failure_code: Mapped[str | None] = mapped_column(String(100))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), unique=True)
    # A won dispute gives the money back: a payment of its own (external id: the dispute).
    reinstatement_payment_id: Mapped[int | None] = mapped_column(
        ForeignKey("payments.id"), unique=True
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StripeCustomer(Base):
    """A policyholder's Stripe customer and the card saved for autopay (its id only)."""

    __tablename__ = "stripe_customers"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id"), unique=True)
    customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    payment_method_saved_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StripeRequest(Base):
    """An outbound POST's idempotency key, stored before the call and reused on retry."""

    __tablename__ = "stripe_requests"
    __table_args__ = (
        CheckConstraint("status IN ('pending','succeeded','failed')", name="status"),
        Index("ix_stripe_requests_purpose_target", "purpose", "target"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    purpose: Mapped[str] = mapped_column(String(30))  # customer, checkout, setup
    target: Mapped[str] = mapped_column(String(100))  # e.g. inv_12, ph_3
    amount: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    result_id: Mapped[str | None] = mapped_column(String(255))
    result_url: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AutopayAttempt(Base):
    """One off-session charge of an invoice: attempt 0 on the due date, then the retries.
    Unique per (invoice, attempt), so a job run twice never charges twice."""

    __tablename__ = "autopay_attempts"
    __table_args__ = (
        UniqueConstraint("invoice_id", "attempt"),
        CheckConstraint(
            "status IN (" + ",".join(repr(s) for s in ATTEMPT_STATUSES) + ")", name="status"
        ),
        Index("ix_autopay_attempts_status", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    scheduled_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class StripePayout(Base):
    """A Stripe payout (`payout.paid`): its balance transactions' totals, whether they add
    up to the amount (else `flagged`), and the bank deposit it was matched to."""

    __tablename__ = "stripe_payouts"
    __table_args__ = (
        CheckConstraint("status IN ('unmatched','matched','flagged')", name="status"),
        Index("ix_stripe_payouts_arrival_date", "arrival_date"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    payout_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    arrival_date: Mapped[date] = mapped_column(Date)
    charges: Mapped[int] = mapped_column(BigInteger, default=0)
    refunds: Mapped[int] = mapped_column(BigInteger, default=0)
    disputes: Mapped[int] = mapped_column(BigInteger, default=0)
    other: Mapped[int] = mapped_column(BigInteger, default=0)
    fees: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20), default="unmatched")
    flag_reason: Mapped[str | None] = mapped_column(Text)
    bank_line_id: Mapped[int | None] = mapped_column(ForeignKey("bank_lines.id"), unique=True)
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"))
    balance_transactions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
