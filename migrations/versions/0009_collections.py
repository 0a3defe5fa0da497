"""collections: each policy's delinquency state and the steps taken, once each

- delinquencies: one row per policy that collections has seen (state, since, anchor, amount
  overdue, the days already stepped, the next day something happens, when it lapsed);
- collection_steps: one row per (policy, step, days after the due date, anchor): unique, so
  two runs or two processes take a step once;
- invoices: a partial index of the open invoices by policy and due date (the job's reads).

Revision ID: 0009_collections
Revises: 0009_notify
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_collections"
down_revision = "0009_notify"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN = sa.text("status IN ('open','partially_paid')")


def upgrade() -> None:
    op.create_table(
        "delinquencies",
        sa.Column("policy_id", ID, nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("anchor_due_date", sa.Date(), nullable=True),
        sa.Column("amount_overdue", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("through", sa.Integer(), nullable=True),
        sa.Column("evaluated_on", sa.Date(), nullable=False),
        sa.Column("next_on", sa.Date(), nullable=True),
        sa.Column("lapsed_on", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('active','past_due','in_grace','lapsed','reinstated')",
            name=op.f("ck_delinquencies_state"),
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name=op.f("fk_delinquencies_policy_id_policies")
        ),
        sa.PrimaryKeyConstraint("policy_id", name=op.f("pk_delinquencies")),
    )
    op.create_index("ix_delinquencies_state", "delinquencies", ["state", "policy_id"])
    op.create_table(
        "collection_steps",
        sa.Column("id", ID, nullable=False),
        sa.Column("policy_id", ID, nullable=False),
        sa.Column("installment_id", ID, nullable=True),
        sa.Column("anchor_due_date", sa.Date(), nullable=False),
        sa.Column("step", sa.String(length=20), nullable=False),
        sa.Column("days_after_due", sa.Integer(), nullable=False),
        sa.Column("taken_on", sa.Date(), nullable=False),
        sa.Column("amount_overdue", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("job_run_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "step IN ('reminder','grace_notice','final_notice','late_fee','lapse',"
            "'reinstatement','write_off')",
            name=op.f("ck_collection_steps_step"),
        ),
        sa.CheckConstraint(
            "status IN ('taken','pending','failed')", name=op.f("ck_collection_steps_status")
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name=op.f("fk_collection_steps_policy_id_policies")
        ),
        sa.ForeignKeyConstraint(
            ["installment_id"],
            ["installments.id"],
            name=op.f("fk_collection_steps_installment_id_installments"),
        ),
        sa.ForeignKeyConstraint(
            ["job_run_id"], ["job_runs.id"], name=op.f("fk_collection_steps_job_run_id_job_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_steps")),
    )
    op.create_index(
        "uq_collection_steps_once",
        "collection_steps",
        ["policy_id", "step", "days_after_due", "anchor_due_date"],
        unique=True,
    )
    op.create_index(
        "ix_invoices_open_policy",
        "invoices",
        ["policy_id", "due_date"],
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )


def downgrade() -> None:
    op.drop_index("ix_invoices_open_policy", table_name="invoices")
    op.drop_index("uq_collection_steps_once", table_name="collection_steps")
    op.drop_table("collection_steps")
    op.drop_index("ix_delinquencies_state", table_name="delinquencies")
    op.drop_table("delinquencies")
