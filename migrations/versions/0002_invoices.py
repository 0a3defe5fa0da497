"""invoices job runs journal

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:22:20.182958
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE invoice_number_seq")
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_apscheduler_jobs")),
    )
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_apscheduler_jobs_next_run_time"), ["next_run_time"], unique=False
        )
    op.create_table(
        "job_runs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("job", sa.String(length=50), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running','succeeded','failed')", name=op.f("ck_job_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_runs")),
    )
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.create_index("ix_job_runs_job_as_of", ["job", "as_of"], unique=False)

    op.create_table(
        "journal_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column(
            "job_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_run_id"], ["job_runs.id"], name=op.f("fk_journal_entries_job_run_id_job_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
    )
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journal_entries_kind_occurred_on", ["kind", "occurred_on"], unique=False
        )

    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number_seq", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.String(length=30), nullable=False),
        sa.Column(
            "installment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "policy_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "policyholder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("amount_written_off", sa.BigInteger(), nullable=False),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("void_reason", sa.Text(), nullable=True),
        sa.Column(
            "job_run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "issue_entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('open','partially_paid','paid','void','written_off')",
            name=op.f("ck_invoices_status"),
        ),
        sa.CheckConstraint(
            "(status = 'void' AND amount_due = 0) OR "
            "(status <> 'void' AND amount_due = total - amount_paid - amount_written_off)",
            name=op.f("ck_invoices_due"),
        ),
        sa.CheckConstraint(
            "amount_paid >= 0 AND amount_written_off >= 0 "
            "AND amount_paid + amount_written_off <= total",
            name=op.f("ck_invoices_not_over_settled"),
        ),
        sa.CheckConstraint("total >= 0", name=op.f("ck_invoices_total")),
        sa.ForeignKeyConstraint(
            ["installment_id"],
            ["installments.id"],
            name=op.f("fk_invoices_installment_id_installments"),
        ),
        sa.ForeignKeyConstraint(
            ["issue_entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_invoices_issue_entry_id_journal_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["job_run_id"], ["job_runs.id"], name=op.f("fk_invoices_job_run_id_job_runs")
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"], ["policies.id"], name=op.f("fk_invoices_policy_id_policies")
        ),
        sa.ForeignKeyConstraint(
            ["policyholder_id"],
            ["policyholders.id"],
            name=op.f("fk_invoices_policyholder_id_policyholders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("installment_id", name=op.f("uq_invoices_installment_id")),
        sa.UniqueConstraint("number", name=op.f("uq_invoices_number")),
        sa.UniqueConstraint("number_seq", name=op.f("uq_invoices_number_seq")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invoices_issue_entry_id"), ["issue_entry_id"], unique=False
        )
        batch_op.create_index("ix_invoices_policy_id", ["policy_id"], unique=False)
        batch_op.create_index(
            "ix_invoices_policyholder_status", ["policyholder_id", "status"], unique=False
        )
        batch_op.create_index("ix_invoices_status_due_date", ["status", "due_date"], unique=False)

    op.create_table(
        "journal_lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column(
            "invoice_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("payment_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "policyholder_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_journal_lines_nonzero")),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["journal_entries.id"],
            name=op.f("fk_journal_lines_entry_id_journal_entries"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_journal_lines_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["policyholder_id"],
            ["policyholders.id"],
            name=op.f("fk_journal_lines_policyholder_id_policyholders"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_lines")),
    )
    with op.batch_alter_table("journal_lines", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journal_lines_account_currency", ["account", "currency"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_journal_lines_entry_id"), ["entry_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_journal_lines_invoice_id"), ["invoice_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_journal_lines_payment_id"), ["payment_id"], unique=False
        )

    op.create_table(
        "invoice_queue",
        sa.Column(
            "installment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["installment_id"],
            ["installments.id"],
            name=op.f("fk_invoice_queue_installment_id_installments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("installment_id", name=op.f("pk_invoice_queue")),
    )
    with op.batch_alter_table("invoice_queue", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invoice_queue_due_date", ["due_date", "installment_id"], unique=False
        )
    _create_queue_triggers()
    # Installments that exist already and have no invoice join the queue.
    op.execute(
        "INSERT INTO invoice_queue (installment_id, due_date) "
        "SELECT id, due_date FROM installments WHERE status = 'scheduled' "
        "AND amount + fee >= 0"
    )


PG_TRIGGERS = [
    """
    CREATE FUNCTION invoice_queue_add_new() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO invoice_queue (installment_id, due_date)
        SELECT id, due_date FROM new_installments
        WHERE status = 'scheduled' AND amount + fee >= 0;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER trg_installments_queue_insert AFTER INSERT ON installments
    REFERENCING NEW TABLE AS new_installments
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_queue_add_new()
    """,
    """
    CREATE FUNCTION invoice_queue_sync() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.status = 'void' AND OLD.status <> 'void' THEN
            DELETE FROM invoice_queue WHERE installment_id = NEW.id;
        ELSIF NEW.status = 'scheduled' AND OLD.status = 'void' THEN
            INSERT INTO invoice_queue (installment_id, due_date)
            SELECT NEW.id, NEW.due_date
            WHERE NEW.amount + NEW.fee >= 0
              AND NOT EXISTS (SELECT 1 FROM invoices WHERE installment_id = NEW.id)
            ON CONFLICT DO NOTHING;
        ELSIF NEW.due_date <> OLD.due_date THEN
            UPDATE invoice_queue SET due_date = NEW.due_date WHERE installment_id = NEW.id;
        END IF;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER trg_installments_queue_update AFTER UPDATE OF status, due_date
    ON installments FOR EACH ROW EXECUTE FUNCTION invoice_queue_sync()
    """,
]

SQLITE_TRIGGERS = [
    """
    CREATE TRIGGER trg_installments_queue_insert AFTER INSERT ON installments
    WHEN NEW.status = 'scheduled' AND NEW.amount + NEW.fee >= 0
    BEGIN
        INSERT INTO invoice_queue (installment_id, due_date) VALUES (NEW.id, NEW.due_date);
    END
    """,
    """
    CREATE TRIGGER trg_installments_queue_void AFTER UPDATE OF status ON installments
    WHEN NEW.status = 'void' AND OLD.status <> 'void'
    BEGIN
        DELETE FROM invoice_queue WHERE installment_id = NEW.id;
    END
    """,
    """
    CREATE TRIGGER trg_installments_queue_unvoid AFTER UPDATE OF status ON installments
    WHEN NEW.status = 'scheduled' AND OLD.status = 'void' AND NEW.amount + NEW.fee >= 0
    BEGIN
        INSERT OR IGNORE INTO invoice_queue (installment_id, due_date)
        SELECT NEW.id, NEW.due_date
        WHERE NOT EXISTS (SELECT 1 FROM invoices WHERE installment_id = NEW.id);
    END
    """,
    """
    CREATE TRIGGER trg_installments_queue_due AFTER UPDATE OF due_date ON installments
    BEGIN
        UPDATE invoice_queue SET due_date = NEW.due_date WHERE installment_id = NEW.id;
    END
    """,
]


def _create_queue_triggers() -> None:
    dialect = op.get_bind().dialect.name
    for statement in PG_TRIGGERS if dialect == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def _drop_queue_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER trg_installments_queue_insert ON installments")
        op.execute("DROP TRIGGER trg_installments_queue_update ON installments")
        op.execute("DROP FUNCTION invoice_queue_add_new()")
        op.execute("DROP FUNCTION invoice_queue_sync()")
    else:
        for name in ("insert", "void", "unvoid", "due"):
            op.execute(f"DROP TRIGGER trg_installments_queue_{name}")


def downgrade() -> None:
    _drop_queue_triggers()
    op.drop_table("invoice_queue")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE invoice_number_seq")
    op.drop_table("apscheduler_jobs")
    with op.batch_alter_table("journal_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_journal_lines_payment_id"))
        batch_op.drop_index(batch_op.f("ix_journal_lines_invoice_id"))
        batch_op.drop_index(batch_op.f("ix_journal_lines_entry_id"))
        batch_op.drop_index("ix_journal_lines_account_currency")

    op.drop_table("journal_lines")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_status_due_date")
        batch_op.drop_index("ix_invoices_policyholder_status")
        batch_op.drop_index("ix_invoices_policy_id")
        batch_op.drop_index(batch_op.f("ix_invoices_issue_entry_id"))

    op.drop_table("invoices")
    with op.batch_alter_table("journal_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_journal_entries_kind_occurred_on")

    op.drop_table("journal_entries")
    with op.batch_alter_table("job_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_job_runs_job_as_of")

    op.drop_table("job_runs")
