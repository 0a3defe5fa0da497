"""foundation

Revision ID: 0001
Revises:
Create Date: 2026-11-22 10:15:48.277425
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "role IN ('admin','billing','finance','auditor')", name=op.f("ck_api_keys_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "policyholders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("phone", sa.String(length=50), nullable=True),
        sa.Column("address", sa.JSON(), nullable=True),
        sa.Column("external_ref", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policyholders")),
        sa.UniqueConstraint("external_ref", name=op.f("uq_policyholders_external_ref")),
    )
    op.create_table(
        "idempotency_records",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "api_key_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_content_type", sa.String(length=100), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_idempotency_records_api_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_records")),
        sa.UniqueConstraint(
            "api_key_id", "key", name=op.f("uq_idempotency_records_api_key_id_key")
        ),
    )
    op.create_table(
        "policies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("policy_number", sa.String(length=50), nullable=False),
        sa.Column(
            "policyholder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("product", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("expiration_date", sa.Date(), nullable=False),
        sa.Column("term_months", sa.Integer(), nullable=False),
        sa.Column("billing_plan", sa.String(length=20), nullable=False),
        sa.Column("policy_fee", sa.BigInteger(), nullable=False),
        sa.Column("installment_fee", sa.BigInteger(), nullable=False),
        sa.Column("autopay", sa.Boolean(), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("renewal_lines", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "billing_plan IN ('annual','semiannual','quarterly','monthly')",
            name=op.f("ck_policies_billing_plan"),
        ),
        sa.CheckConstraint("product IN ('pet','general')", name=op.f("ck_policies_product")),
        sa.CheckConstraint(
            "status IN ('active','past_due','in_grace','lapsed','cancelled','expired','renewed')",
            name=op.f("ck_policies_status"),
        ),
        sa.CheckConstraint(
            "policy_fee >= 0 AND installment_fee >= 0", name=op.f("ck_policies_fees")
        ),
        sa.ForeignKeyConstraint(
            ["policyholder_id"],
            ["policyholders.id"],
            name=op.f("fk_policies_policyholder_id_policyholders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policies")),
        sa.UniqueConstraint("policy_number", name=op.f("uq_policies_policy_number")),
    )
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.create_index("ix_policies_policyholder_id", ["policyholder_id"], unique=False)
        batch_op.create_index(
            "ix_policies_status_expiration", ["status", "expiration_date"], unique=False
        )

    op.create_table(
        "policy_terms",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "policy_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("term_number", sa.Integer(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("annual_premium", sa.BigInteger(), nullable=False),
        sa.Column("term_premium", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("cancelled_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('active','cancelled','expired','pending')",
            name=op.f("ck_policy_terms_status"),
        ),
        sa.CheckConstraint("start_date < end_date", name=op.f("ck_policy_terms_dates")),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name=op.f("fk_policy_terms_policy_id_policies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_terms")),
        sa.UniqueConstraint(
            "policy_id", "term_number", name=op.f("uq_policy_terms_policy_id_term_number")
        ),
    )
    op.create_table(
        "cancellations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("term_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "policy_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("earned_premium", sa.BigInteger(), nullable=False),
        sa.Column("refund_due", sa.BigInteger(), nullable=False),
        sa.Column("balance_due", sa.BigInteger(), nullable=False),
        sa.Column("reinstated_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "method IN ('pro_rata','short_rate')", name=op.f("ck_cancellations_method")
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name=op.f("fk_cancellations_policy_id_policies")
        ),
        sa.ForeignKeyConstraint(
            ["term_id"], ["policy_terms.id"], name=op.f("fk_cancellations_term_id_policy_terms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cancellations")),
    )
    with op.batch_alter_table("cancellations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cancellations_policy_id"), ["policy_id"], unique=False)
        batch_op.create_index(
            "uq_cancellations_standing_term",
            ["term_id"],
            unique=True,
            postgresql_where=sa.text("reinstated_on IS NULL"),
            sqlite_where=sa.text("reinstated_on IS NULL"),
        )

    op.create_table(
        "endorsements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "policy_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("term_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("old_annual_premium", sa.BigInteger(), nullable=False),
        sa.Column("new_annual_premium", sa.BigInteger(), nullable=False),
        sa.Column("delta_amount", sa.BigInteger(), nullable=False),
        sa.Column("days_remaining", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name=op.f("fk_endorsements_policy_id_policies")
        ),
        sa.ForeignKeyConstraint(
            ["term_id"], ["policy_terms.id"], name=op.f("fk_endorsements_term_id_policy_terms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_endorsements")),
    )
    with op.batch_alter_table("endorsements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_endorsements_policy_id"), ["policy_id"], unique=False)

    op.create_table(
        "premium_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("term_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("annual_premium", sa.BigInteger(), nullable=False),
        sa.Column("pet_name", sa.String(length=100), nullable=True),
        sa.Column("pet_species", sa.String(length=50), nullable=True),
        sa.Column("pet_breed", sa.String(length=100), nullable=True),
        sa.Column("pet_date_of_birth", sa.Date(), nullable=True),
        sa.CheckConstraint("annual_premium >= 0", name=op.f("ck_premium_lines_premium")),
        sa.ForeignKeyConstraint(
            ["term_id"], ["policy_terms.id"], name=op.f("fk_premium_lines_term_id_policy_terms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_premium_lines")),
        sa.UniqueConstraint("term_id", "position", name=op.f("uq_premium_lines_term_id_position")),
    )
    op.create_table(
        "installments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "policy_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("term_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "voided_by_cancellation_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.CheckConstraint("kind IN ('premium','adjustment')", name=op.f("ck_installments_kind")),
        sa.CheckConstraint(
            "status IN ('scheduled','invoiced','void')", name=op.f("ck_installments_status")
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name=op.f("fk_installments_policy_id_policies")
        ),
        sa.ForeignKeyConstraint(
            ["term_id"], ["policy_terms.id"], name=op.f("fk_installments_term_id_policy_terms")
        ),
        sa.ForeignKeyConstraint(
            ["voided_by_cancellation_id"],
            ["cancellations.id"],
            name=op.f("fk_installments_voided_by_cancellation_id_cancellations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installments")),
        sa.UniqueConstraint("term_id", "number", name=op.f("uq_installments_term_id_number")),
    )
    with op.batch_alter_table("installments", schema=None) as batch_op:
        batch_op.create_index("ix_installments_policy_id", ["policy_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("installments", schema=None) as batch_op:
        batch_op.drop_index("ix_installments_policy_id")

    op.drop_table("installments")
    op.drop_table("premium_lines")
    with op.batch_alter_table("endorsements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_endorsements_policy_id"))

    op.drop_table("endorsements")
    with op.batch_alter_table("cancellations", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_cancellations_standing_term",
            postgresql_where=sa.text("reinstated_on IS NULL"),
            sqlite_where=sa.text("reinstated_on IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_cancellations_policy_id"))

    op.drop_table("cancellations")
    op.drop_table("policy_terms")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_index("ix_policies_status_expiration")
        batch_op.drop_index("ix_policies_policyholder_id")

    op.drop_table("policies")
    op.drop_table("idempotency_records")
    op.drop_table("policyholders")
    op.drop_table("api_keys")
