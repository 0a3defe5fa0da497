"""the finance dashboard: named users (argon2 password hashes) and failed logins (throttle)

Revision ID: 0009_dashboard
Revises: 0009_collections
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_dashboard"
down_revision = "0009_collections"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dashboard_users",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('admin','billing','finance','auditor')", name=op.f("ck_dashboard_users_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_users")),
        sa.UniqueConstraint("name", name=op.f("uq_dashboard_users_name")),
    )
    op.create_table(
        "dashboard_login_failures",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dashboard_login_failures")),
    )
    op.create_index(
        "ix_dashboard_login_failures_name_at", "dashboard_login_failures", ["name", "failed_at"]
    )
    op.create_index(
        "ix_dashboard_login_failures_address_at",
        "dashboard_login_failures",
        ["address", "failed_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_dashboard_login_failures_address_at", "dashboard_login_failures")
    op.drop_index("ix_dashboard_login_failures_name_at", "dashboard_login_failures")
    op.drop_table("dashboard_login_failures")
    op.drop_table("dashboard_users")
