"""SQLAlchemy 2 typed models. The schema changes only through Alembic migrations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from premium_billing.db.base import Base, Id
from premium_billing.db.types import utcnow


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('admin','billing','finance','auditor')", name="role"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The key stops working at this instant: now (revoked) or later (a rotated key's grace).
    revoked_at: Mapped[datetime | None] = mapped_column()
    # The key this one replaced (`keys rotate`): unique, so a key is rotated once, whatever
    # runs at the same time.
    rotated_from_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("api_keys.id"), unique=True, default=None
    )


class IdempotencyRecord(Base):
    """The first response to a POST with an Idempotency-Key, replayed for the same key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    # Set in the first request's own transaction when its work commits: a retry never runs
    # that work again, whatever happens to the response afterwards.
    committed_at: Mapped[datetime | None] = mapped_column()
    # NULL while the first request is still running.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_content_type: Mapped[str | None] = mapped_column(String(100))
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
