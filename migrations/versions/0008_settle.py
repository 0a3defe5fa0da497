"""cancellation settles the account: credit notes on invoices, refunds payable paid out

- invoices.amount_credited: premium taken off by credit notes (total is net of them);
- invoice_credits: the credit notes (a cancellation's or lapse's unearned premium, an
  endorsement's premium cut; a reinstatement's reversal is a negative row);
- refunds: why (kind), how it is paid (channel), the payer, the cancellation that owed it,
  Stripe's refund id, when and how it was paid (its journal entry), failure, cancellation;
  status `paid` is now `succeeded` (as Stripe and the API say), and `cancelled` is new;
- cancellations: kind (cancellation or lapse) and the settlement's final invoice.

Revision ID: 0008_settle
Revises: 0008_guard
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa
from alembic import op

revision = "0008_settle"
down_revision = "0008_guard"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OLD_STATUS = "status IN ('pending','paid','failed')"
NEW_STATUS = "status IN ('pending','succeeded','failed','cancelled')"


def upgrade() -> None:
    op.add_column(
        "invoices",
        sa.Column("amount_credited", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.add_column(
        "cancellations",
        sa.Column("kind", sa.String(length=20), nullable=False, server_default="cancellation"),
    )
    # A plain ADD COLUMN (no table rebuild: installments refer to cancellations).
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE cancellations ADD COLUMN final_invoice_id INTEGER "
            "CONSTRAINT fk_cancellations_final_invoice_id_invoices REFERENCES invoices (id)"
        )
    else:
        op.add_column("cancellations", sa.Column("final_invoice_id", ID, nullable=True))
        op.create_foreign_key(
            op.f("fk_cancellations_final_invoice_id_invoices"),
            "cancellations",
            "invoices",
            ["final_invoice_id"],
            ["id"],
        )

    op.create_table(
        "invoice_credits",
        sa.Column("id", ID, nullable=False),
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("cancellation_id", ID, nullable=True),
        sa.Column("endorsement_id", ID, nullable=True),
        sa.Column("payment_id", ID, nullable=True),
        sa.Column("reverses_id", ID, nullable=True),
        sa.Column("entry_id", ID, nullable=False),
        sa.Column("credited_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_invoice_credits_nonzero")),
        sa.CheckConstraint(
            "kind IN ('cancellation','lapse','endorsement','reversal')",
            name=op.f("ck_invoice_credits_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_credits_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["cancellation_id"],
            ["cancellations.id"],
            name=op.f("fk_invoice_credits_cancellation_id_cancellations"),
        ),
        sa.ForeignKeyConstraint(
            ["endorsement_id"],
            ["endorsements.id"],
            name=op.f("fk_invoice_credits_endorsement_id_endorsements"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"], ["payments.id"], name=op.f("fk_invoice_credits_payment_id_payments")
        ),
        sa.ForeignKeyConstraint(
            ["reverses_id"],
            ["invoice_credits.id"],
            name=op.f("fk_invoice_credits_reverses_id_invoice_credits"),
        ),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_invoice_credits_entry_id_journal_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_credits")),
        sa.UniqueConstraint("reverses_id", name=op.f("uq_invoice_credits_reverses_id")),
    )
    with op.batch_alter_table("invoice_credits", schema=None) as batch_op:
        batch_op.create_index("ix_invoice_credits_invoice_id", ["invoice_id"], unique=False)
        batch_op.create_index(
            "ix_invoice_credits_cancellation_id", ["cancellation_id"], unique=False
        )

    # Refunds: nothing refers to them, so SQLite may rebuild the table (its CHECKs change).
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_refunds_status"), type_="check")
        batch_op.add_column(
            sa.Column("kind", sa.String(length=20), nullable=False, server_default="manual")
        )
        batch_op.add_column(
            sa.Column("channel", sa.String(length=20), nullable=False, server_default="transfer")
        )
        batch_op.add_column(sa.Column("policyholder_id", ID, nullable=True))
        batch_op.add_column(sa.Column("cancellation_id", ID, nullable=True))
        batch_op.add_column(sa.Column("stripe_refund_id", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("failure_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("paid_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("paid_method", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("paid_reference", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("paid_entry_id", ID, nullable=True))
        batch_op.add_column(sa.Column("cancelled_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE refunds SET status = 'succeeded' WHERE status = 'paid'")
    op.execute(
        "UPDATE refunds SET channel = 'stripe', "
        "policyholder_id = (SELECT p.policyholder_id FROM payments p WHERE p.id = payment_id) "
        "WHERE payment_id IN (SELECT id FROM payments WHERE source = 'stripe')"
    )
    op.execute(
        "UPDATE refunds SET policyholder_id = "
        "(SELECT p.policyholder_id FROM payments p WHERE p.id = payment_id) "
        "WHERE policyholder_id IS NULL"
    )
    _journal_refunds_paid_before()
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.alter_column("kind", server_default=None)
        batch_op.alter_column("channel", server_default=None)
        batch_op.create_check_constraint("status", NEW_STATUS)
        batch_op.create_check_constraint("kind", "kind IN ('cancellation','overpayment','manual')")
        batch_op.create_check_constraint("channel", "channel IN ('stripe','check','transfer')")
        batch_op.create_unique_constraint(op.f("uq_refunds_stripe_refund_id"), ["stripe_refund_id"])
        batch_op.create_foreign_key(
            op.f("fk_refunds_policyholder_id_policyholders"),
            "policyholders",
            ["policyholder_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            op.f("fk_refunds_cancellation_id_cancellations"),
            "cancellations",
            ["cancellation_id"],
            ["id"],
        )
        batch_op.create_foreign_key(
            op.f("fk_refunds_paid_entry_id_journal_entries"),
            "journal_entries",
            ["paid_entry_id"],
            ["id"],
        )
        batch_op.create_index("ix_refunds_status", ["status"], unique=False)
        batch_op.create_index("ix_refunds_policyholder_id", ["policyholder_id"], unique=False)
        batch_op.create_index("ix_refunds_cancellation_id", ["cancellation_id"], unique=False)


def _journal_refunds_paid_before() -> None:
    """A refund paid before this revision (status `paid`, now `succeeded`) left refunds
    payable without an entry: refunds payable now holds only what is still owed, and each
    refund paid out has its payout entry (`ledger check` says both). Journal its payout
    (refunds payable -> Stripe clearing, or the bank) on the day it was recorded."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT r.id, r.amount, r.currency, r.payment_id, r.created_at, p.source, "
            "p.policyholder_id FROM refunds r JOIN payments p ON p.id = r.payment_id "
            "WHERE r.status = 'succeeded' AND r.paid_entry_id IS NULL ORDER BY r.id"
        )
    ).all()
    now = datetime.now(UTC)
    for refund_id, amount, currency, payment_id, created_at, source, holder in rows:
        on = _date_of(created_at) or now.date()
        entry_id = bind.execute(
            sa.text(
                "INSERT INTO journal_entries (kind, occurred_on, memo, created_at) "
                "VALUES ('refund_paid', :on, :memo, :now) RETURNING id"
            ),
            {"on": on, "memo": f"Refund re_{refund_id} paid out before 0008", "now": now},
        ).scalar_one()
        cash = "stripe_clearing" if source == "stripe" else "cash_bank"
        for account, signed, tagged_holder in (
            ("refunds_payable", amount, holder),
            (cash, -amount, None),
        ):
            bind.execute(
                sa.text(
                    "INSERT INTO journal_lines (entry_id, account, currency, amount, "
                    "payment_id, policyholder_id) VALUES (:e, :a, :c, :m, :p, :h)"
                ),
                {"e": entry_id, "a": account, "c": currency, "m": signed, "p": payment_id,
                 "h": tagged_holder},
            )  # fmt: skip
        bind.execute(
            sa.text("UPDATE refunds SET paid_entry_id = :e, paid_on = :on WHERE id = :id"),
            {"e": entry_id, "on": on, "id": refund_id},
        )


def _date_of(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value[:19]).date()
    return None


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_refunds_cancellation_id")
        batch_op.drop_index("ix_refunds_policyholder_id")
        batch_op.drop_index("ix_refunds_status")
        batch_op.drop_constraint(op.f("fk_refunds_paid_entry_id_journal_entries"), "foreignkey")
        batch_op.drop_constraint(op.f("fk_refunds_cancellation_id_cancellations"), "foreignkey")
        batch_op.drop_constraint(op.f("fk_refunds_policyholder_id_policyholders"), "foreignkey")
        batch_op.drop_constraint(op.f("uq_refunds_stripe_refund_id"), type_="unique")
        batch_op.drop_constraint(op.f("ck_refunds_channel"), type_="check")
        batch_op.drop_constraint(op.f("ck_refunds_kind"), type_="check")
        batch_op.drop_constraint(op.f("ck_refunds_status"), type_="check")
    op.execute("UPDATE refunds SET status = 'paid' WHERE status = 'succeeded'")
    op.execute("UPDATE refunds SET status = 'failed' WHERE status = 'cancelled'")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        for column in (
            "updated_at", "cancelled_on", "paid_entry_id", "paid_reference", "paid_method",
            "paid_on", "failure_reason", "stripe_refund_id", "cancellation_id",
            "policyholder_id", "channel", "kind",
        ):  # fmt: skip
            batch_op.drop_column(column)
        batch_op.create_check_constraint("status", OLD_STATUS)
    with op.batch_alter_table("invoice_credits", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_credits_cancellation_id")
        batch_op.drop_index("ix_invoice_credits_invoice_id")
    op.drop_table("invoice_credits")
    with op.batch_alter_table("cancellations", schema=None) as batch_op:
        batch_op.drop_column("final_invoice_id")
        batch_op.drop_column("kind")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_column("amount_credited")
