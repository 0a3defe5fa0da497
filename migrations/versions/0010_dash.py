"""journal_totals: the journal's lines summed per business day, account, currency and entry
kind (kept by `ledger.journal` in each entry's transaction; the KPIs read it), back-filled
from the existing lines; ix_invoices_owed: the aging's totals of today from an index;
ix_payments_suspense: the payments in suspense now

Revision ID: 0010_dash
Revises: 0009_dashboard
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from premium_billing.ledger.journal import rebuild_totals

OWED = sa.text("status IN ('open','partially_paid') AND amount_due > 0")
SUSPENSE = sa.text("amount_unapplied > 0 AND policyholder_id IS NULL")

revision = "0010_dash"
down_revision = "0009_dashboard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal_totals",
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("account", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "occurred_on", "account", "currency", "kind", name=op.f("pk_journal_totals")
        ),
    )
    # The back-fill is the one derivation of the totals from the lines (also the seeds').
    rebuild_totals(op.get_bind())
    op.create_index(
        "ix_invoices_owed",
        "invoices",
        ["currency", "due_date"],
        postgresql_include=["amount_due", "issue_date"],
        postgresql_where=OWED,
        sqlite_where=OWED,
    )
    op.create_index(
        "ix_payments_suspense",
        "payments",
        ["currency"],
        postgresql_include=["amount_unapplied"],
        postgresql_where=SUSPENSE,
        sqlite_where=SUSPENSE,
    )


def downgrade() -> None:
    op.drop_index("ix_payments_suspense", table_name="payments")
    op.drop_index("ix_invoices_owed", table_name="invoices")
    op.drop_table("journal_totals")
