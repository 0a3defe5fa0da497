"""reports: journal entries by date

- ix_journal_entries_occurred_on: the aging as of a past date reads the receivable legs
  posted after it (and the KPIs those of a period) by the entries' dates.

Revision ID: 0009_reports
Revises: 0009_stripe_events
"""

from __future__ import annotations

from alembic import op

revision = "0009_reports"
down_revision = "0009_stripe_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_journal_entries_occurred_on", "journal_entries", ["occurred_on"])


def downgrade() -> None:
    op.drop_index("ix_journal_entries_occurred_on", table_name="journal_entries")
