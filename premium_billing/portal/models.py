"""The portal's table: which invoices each Checkout it started pays, so the page Stripe
returns the policyholder to shows their result once the webhook has posted it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from premium_billing.db.base import Base, Id
from premium_billing.db.types import utcnow


class PortalCheckout(Base):
    """A Checkout Session the portal started: Pay now (one invoice), Pay everything overdue
    (several) or the autopay setup (none)."""

    __tablename__ = "portal_checkouts"
    __table_args__ = (
        CheckConstraint("purpose IN ('invoice','overdue','autopay')", name="purpose"),
        Index("ix_portal_checkouts_policyholder_id", "policyholder_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    session_id: Mapped[str] = mapped_column(String(255), unique=True)
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id"))
    purpose: Mapped[str] = mapped_column(String(20))
    invoice_ids: Mapped[list[int]] = mapped_column(JSON)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
