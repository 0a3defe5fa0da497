"""Stripe events read as Stripe documents them (issue 13, items 6-8)

stripe_payment_states gains what a dispute did to the money, as facts that only grow:
- dispute_funds_withdrawn: Stripe took the disputed amount (charge.dispute.funds_withdrawn,
  or a status other than the inquiry's warning_*): the payment is reversed;
- dispute_funds_reinstated: Stripe gave it back (funds_reinstated, won, warning_closed);
- dispute_flag / dispute_flagged_on: a dispute larger than its payment, for finance.

Revision ID: 0009_stripe_events
Revises: 0008_settle
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_stripe_events"
down_revision = "0008_settle"
branch_labels = None
depends_on = None

TABLE = "stripe_payment_states"


def upgrade() -> None:
    op.add_column(
        TABLE,
        sa.Column(
            "dispute_funds_withdrawn", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )
    op.add_column(
        TABLE,
        sa.Column(
            "dispute_funds_reinstated", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )
    op.add_column(TABLE, sa.Column("dispute_flag", sa.Text(), nullable=True))
    op.add_column(TABLE, sa.Column("dispute_flagged_on", sa.Date(), nullable=True))
    # Disputes stored before: an open or lost one had its funds withdrawn, a won one also
    # had them back (what the code before this revision posted for them).
    op.execute(
        f"UPDATE {TABLE} SET dispute_funds_withdrawn = TRUE "
        "WHERE dispute_id IS NOT NULL AND dispute_status NOT LIKE 'warning%'"
    )
    op.execute(f"UPDATE {TABLE} SET dispute_funds_reinstated = TRUE WHERE dispute_status = 'won'")


def downgrade() -> None:
    for column in (
        "dispute_flagged_on",
        "dispute_flag",
        "dispute_funds_reinstated",
        "dispute_funds_withdrawn",
    ):
        op.drop_column(TABLE, column)
