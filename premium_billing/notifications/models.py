"""The email outbox: one row per notice, unique per (kind, business key)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from premium_billing.db.base import Base, Id, Timestamps

from .rules import KINDS, STATUSES


class Notification(Timestamps, Base):
    """A notice to a policyholder: queued → sent, or failed after its last attempt.

    `business_key` names what it is about (an invoice, a payment, a collections step, a
    refund); a notice published twice is stored once (the unique key). The sender claims a
    row by setting `claimed_until` (a lease) and marks it sent right after the SMTP server
    accepted it (`message_id` is the Message-ID header: a resend after a crash between the
    two carries the same one)."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("kind", "business_key"),
        CheckConstraint("kind IN (" + ",".join(repr(k) for k in KINDS) + ")", name="kind"),
        CheckConstraint("status IN (" + ",".join(repr(s) for s in STATUSES) + ")", name="status"),
        Index("ix_notifications_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_notifications_policyholder_id", "policyholder_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    business_key: Mapped[str] = mapped_column(String(100))
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id"))
    policy_id: Mapped[int | None] = mapped_column(BigInteger)
    invoice_id: Mapped[int | None] = mapped_column(BigInteger)
    # What the template needs beyond the rows it reads at send time (amounts, dates).
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    claimed_until: Mapped[datetime | None] = mapped_column()
    message_id: Mapped[str | None] = mapped_column(String(200))
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(300))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column()
