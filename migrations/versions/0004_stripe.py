"""stripe: webhook inbox, customers and payment methods, outbound idempotency keys, autopay

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = (
    "autopay_attempts",
    "stripe_payment_states",
    "stripe_events",
    "stripe_customers",
    "stripe_requests",
)


def upgrade() -> None:
    op.create_table(
        "stripe_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("result_id", sa.String(length=255), nullable=True),
        sa.Column("result_url", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending','succeeded','failed')", name=op.f("ck_stripe_requests_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_requests")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_stripe_requests_idempotency_key")),
    )
    op.create_index(
        "ix_stripe_requests_purpose_target", "stripe_requests", ["purpose", "target"], unique=False
    )
    op.create_table(
        "stripe_customers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "policyholder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("payment_method_id", sa.String(length=255), nullable=True),
        sa.Column("payment_method_saved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["policyholder_id"],
            ["policyholders.id"],
            name=op.f("fk_stripe_customers_policyholder_id_policyholders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_customers")),
        sa.UniqueConstraint("customer_id", name=op.f("uq_stripe_customers_customer_id")),
        sa.UniqueConstraint("policyholder_id", name=op.f("uq_stripe_customers_policyholder_id")),
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=True),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("stripe_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("posting_latency_ms", sa.BigInteger(), nullable=True),
        sa.Column(
            "payment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.CheckConstraint(
            "status IN ('queued','processed','ignored','failed','dead')",
            name=op.f("ck_stripe_events_status"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_stripe_events_payment_id_payments")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_stripe_events_event_id")),
    )
    op.create_index(
        "ix_stripe_events_status_next_attempt_at",
        "stripe_events",
        ["status", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "stripe_payment_states",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=False),
        sa.Column("charge_id", sa.String(length=255), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("stripe_metadata", sa.JSON(), nullable=True),
        sa.Column("payer_name", sa.String(length=200), nullable=True),
        sa.Column("customer_id", sa.String(length=255), nullable=True),
        sa.Column("created_on", sa.Date(), nullable=True),
        sa.Column("amount_refunded", sa.BigInteger(), nullable=False),
        sa.Column("dispute_id", sa.String(length=255), nullable=True),
        sa.Column("dispute_amount", sa.BigInteger(), nullable=True),
        sa.Column("dispute_status", sa.String(length=30), nullable=True),
        sa.Column("failure_code", sa.String(length=100), nullable=True),
        sa.Column(
            "payment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "reinstatement_payment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "amount_refunded >= 0", name=op.f("ck_stripe_payment_states_amount_refunded")
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_stripe_payment_states_payment_id_payments"),
        ),
        sa.ForeignKeyConstraint(
            ["reinstatement_payment_id"],
            ["payments.id"],
            name=op.f("fk_stripe_payment_states_reinstatement_payment_id_payments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stripe_payment_states")),
        sa.UniqueConstraint("payment_id", name=op.f("uq_stripe_payment_states_payment_id")),
        sa.UniqueConstraint(
            "payment_intent_id", name=op.f("uq_stripe_payment_states_payment_intent_id")
        ),
        sa.UniqueConstraint(
            "reinstatement_payment_id",
            name=op.f("uq_stripe_payment_states_reinstatement_payment_id"),
        ),
    )
    op.create_index(
        "ix_stripe_payment_states_charge_id", "stripe_payment_states", ["charge_id"], unique=False
    )
    op.create_table(
        "autopay_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("scheduled_on", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("failure_code", sa.String(length=100), nullable=True),
        sa.Column(
            "job_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending','succeeded','failed')", name=op.f("ck_autopay_attempts_status")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_autopay_attempts_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["job_run_id"], ["job_runs.id"], name=op.f("fk_autopay_attempts_job_run_id_job_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_autopay_attempts")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_autopay_attempts_idempotency_key")),
        sa.UniqueConstraint(
            "invoice_id", "attempt", name=op.f("uq_autopay_attempts_invoice_id_attempt")
        ),
    )
    op.create_index("ix_autopay_attempts_status", "autopay_attempts", ["status"], unique=False)


def downgrade() -> None:
    for table in TABLES:  # dependents first
        op.drop_table(table)
