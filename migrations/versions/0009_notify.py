"""notices by email and outbound events (issue 14, items 4-5)

- policyholders.locale: how amounts and dates are written to them (default en_US);
- notifications: the email outbox, one row per (kind, business key), with the sender's lease;
- webhook_endpoints, webhook_subscriptions: the insurer's URLs and the events each wants;
- outbound_events, event_deliveries, delivery_attempts: an event once per (type, business
  key), a delivery per subscribed endpoint, every attempt logged.

Revision ID: 0009_notify
Revises: 0009_portal
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_notify"
down_revision = "0009_portal"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
NOTIFICATION_KINDS = (
    "'invoice_issued','payment_receipt','payment_failed','reminder','grace_notice',"
    "'final_notice','lapse','reinstatement','refund_sent'"
)


def _stamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("policyholders") as batch:
        batch.add_column(
            sa.Column("locale", sa.String(length=35), nullable=False, server_default="en_US")
        )

    op.create_table(
        "notifications",
        sa.Column("id", ID, nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("business_key", sa.String(length=100), nullable=False),
        sa.Column("policyholder_id", ID, nullable=False),
        sa.Column("policy_id", sa.BigInteger(), nullable=True),
        sa.Column("invoice_id", sa.BigInteger(), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        *_stamps(),
        sa.CheckConstraint(f"kind IN ({NOTIFICATION_KINDS})", name=op.f("ck_notifications_kind")),
        sa.CheckConstraint(
            "status IN ('queued','sent','failed')", name=op.f("ck_notifications_status")
        ),
        sa.ForeignKeyConstraint(
            ["policyholder_id"],
            ["policyholders.id"],
            name=op.f("fk_notifications_policyholder_id_policyholders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint(
            "kind", "business_key", name=op.f("uq_notifications_kind_business_key")
        ),
    )
    op.create_index(
        "ix_notifications_status_next_attempt_at",
        "notifications",
        ["status", "next_attempt_at"],
    )
    op.create_index("ix_notifications_policyholder_id", "notifications", ["policyholder_id"])

    op.create_table(
        "webhook_endpoints",
        sa.Column("id", ID, nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        *_stamps(),
        sa.CheckConstraint(
            "status IN ('enabled','disabled')", name=op.f("ck_webhook_endpoints_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("endpoint_id", ID, nullable=False),
        sa.Column("event_type", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_subscriptions_endpoint_id_webhook_endpoints"),
        ),
        sa.PrimaryKeyConstraint("endpoint_id", "event_type", name=op.f("pk_webhook_subscriptions")),
    )
    op.create_table(
        "outbound_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("business_key", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_events")),
        sa.UniqueConstraint(
            "type", "business_key", name=op.f("uq_outbound_events_type_business_key")
        ),
    )
    op.create_table(
        "event_deliveries",
        sa.Column("id", ID, nullable=False),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("endpoint_id", ID, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        *_stamps(),
        sa.CheckConstraint(
            "status IN ('pending','succeeded','failed')", name=op.f("ck_event_deliveries_status")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["outbound_events.id"],
            name=op.f("fk_event_deliveries_event_id_outbound_events"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_event_deliveries_endpoint_id_webhook_endpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_deliveries")),
        sa.UniqueConstraint(
            "event_id", "endpoint_id", name=op.f("uq_event_deliveries_event_id_endpoint_id")
        ),
    )
    op.create_index(
        "ix_event_deliveries_status_next_attempt_at",
        "event_deliveries",
        ["status", "next_attempt_at"],
    )
    op.create_index("ix_event_deliveries_endpoint_id", "event_deliveries", ["endpoint_id"])
    op.create_table(
        "delivery_attempts",
        sa.Column("id", ID, nullable=False),
        sa.Column("delivery_id", ID, nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["event_deliveries.id"],
            name=op.f("fk_delivery_attempts_delivery_id_event_deliveries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_attempts")),
    )
    op.create_index(op.f("ix_delivery_attempts_delivery_id"), "delivery_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_delivery_attempts_delivery_id"), table_name="delivery_attempts")
    op.drop_table("delivery_attempts")
    op.drop_index("ix_event_deliveries_endpoint_id", table_name="event_deliveries")
    op.drop_index("ix_event_deliveries_status_next_attempt_at", table_name="event_deliveries")
    op.drop_table("event_deliveries")
    op.drop_table("outbound_events")
    op.drop_table("webhook_subscriptions")
    op.drop_table("webhook_endpoints")
    op.drop_index("ix_notifications_policyholder_id", table_name="notifications")
    op.drop_index("ix_notifications_status_next_attempt_at", table_name="notifications")
    op.drop_table("notifications")
    with op.batch_alter_table("policyholders") as batch:
        batch.drop_column("locale")
