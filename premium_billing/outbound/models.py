"""Outbound events: endpoints, their subscriptions, events, deliveries and every attempt."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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
from premium_billing.db.types import utcnow

from .rules import DELIVERY_STATUSES, ENDPOINT_STATUSES


class WebhookEndpoint(Timestamps, Base):
    """An insurer's URL registered by an admin; `secret` signs what it is sent (Standard
    Webhooks `whsec_…`). Disabled after OUTBOUND_DISABLE_AFTER_DAYS of failures
    (`failing_since`: the first failure since its last success); deleted ones are kept for
    their log (`deleted_at`)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ",".join(repr(s) for s in ENDPOINT_STATUSES) + ")", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="enabled")
    failing_since: Mapped[datetime | None] = mapped_column()
    disabled_at: Mapped[datetime | None] = mapped_column()
    deleted_at: Mapped[datetime | None] = mapped_column()


class WebhookSubscription(Base):
    """One event type an endpoint wants (a row per type: deliveries are made by a join)."""

    __tablename__ = "webhook_subscriptions"

    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(50), primary_key=True)


class OutboundEvent(Base):
    """A business event, once per (type, business key), with the JSON it carries."""

    __tablename__ = "outbound_events"
    __table_args__ = (UniqueConstraint("type", "business_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    type: Mapped[str] = mapped_column(String(50))
    business_key: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EventDelivery(Timestamps, Base):
    """An event to one endpoint: pending (claimed by a sender with a lease) → succeeded, or
    failed after its last retry (about 3 days)."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id"),
        CheckConstraint(
            "status IN (" + ",".join(repr(s) for s in DELIVERY_STATUSES) + ")", name="status"
        ),
        Index("ix_event_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_event_deliveries_endpoint_id", "endpoint_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("outbound_events.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    claimed_until: Mapped[datetime | None] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column()


class DeliveryAttempt(Base):
    """The log: every request made, with what came back."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("event_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)
