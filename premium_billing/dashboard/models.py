"""The dashboard's tables: named users who log in, and failed logins (the throttle)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from premium_billing.db.base import Base, Id
from premium_billing.db.types import utcnow


class DashboardUser(Base):
    """A person who logs in to the dashboard: a unique name, a role as the API's, an
    argon2 hash of the password (never the password)."""

    __tablename__ = "dashboard_users"
    __table_args__ = (
        CheckConstraint("role IN ('admin','billing','finance','auditor')", name="role"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column()
    disabled_at: Mapped[datetime | None] = mapped_column()


class LoginFailure(Base):
    """One failed login: the name tried (known or not) and the client's address. Recent
    rows lock the name, or the address, for a while; a good login clears the name's."""

    __tablename__ = "dashboard_login_failures"
    __table_args__ = (
        Index("ix_dashboard_login_failures_name_at", "name", "failed_at"),
        Index("ix_dashboard_login_failures_address_at", "address", "failed_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)
