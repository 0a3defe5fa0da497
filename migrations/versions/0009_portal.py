"""the policyholder portal: portal_checkouts (which invoices each Checkout it started pays);
payments by policyholder and date (the portal's payment history and the statement of account
read a policyholder's payments: without it, a scan of every payment)

Revision ID: 0009_portal
Revises: 0009_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_portal"
down_revision = "0009_reports"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "portal_checkouts",
        sa.Column("id", ID, nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=False),
        sa.Column("policyholder_id", ID, nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("invoice_ids", sa.JSON(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "purpose IN ('invoice','overdue','autopay')", name=op.f("ck_portal_checkouts_purpose")
        ),
        sa.ForeignKeyConstraint(
            ["policyholder_id"],
            ["policyholders.id"],
            name=op.f("fk_portal_checkouts_policyholder_id_policyholders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_checkouts")),
        sa.UniqueConstraint("session_id", name=op.f("uq_portal_checkouts_session_id")),
    )
    op.create_index("ix_portal_checkouts_policyholder_id", "portal_checkouts", ["policyholder_id"])
    op.create_index(
        "ix_payments_policyholder_received", "payments", ["policyholder_id", "received_on"]
    )


def downgrade() -> None:
    op.drop_index("ix_payments_policyholder_received", table_name="payments")
    op.drop_index("ix_portal_checkouts_policyholder_id", table_name="portal_checkouts")
    op.drop_table("portal_checkouts")
