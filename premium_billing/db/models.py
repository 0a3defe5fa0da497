"""SQLAlchemy 2 typed models. The schema changes only through Alembic migrations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from .types import UTCDateTime, utcnow

# Named constraints so that migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime()}


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Policyholder(Timestamps, Base):
    __tablename__ = "policyholders"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)

    policies: Mapped[list[Policy]] = relationship(back_populates="policyholder")


class Policy(Timestamps, Base):
    __tablename__ = "policies"
    __table_args__ = (
        CheckConstraint(
            "billing_plan IN ('annual','semiannual','quarterly','monthly')", name="billing_plan"
        ),
        CheckConstraint("product IN ('pet','general')", name="product"),
        CheckConstraint(
            "status IN ('active','past_due','in_grace','lapsed','cancelled','expired','renewed')",
            name="status",
        ),
        CheckConstraint("policy_fee >= 0 AND installment_fee >= 0", name="fees"),
        Index("ix_policies_policyholder_id", "policyholder_id"),
        Index("ix_policies_status_expiration", "status", "expiration_date"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    policy_number: Mapped[str] = mapped_column(String(50), unique=True)
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id"))
    product: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    effective_date: Mapped[date] = mapped_column(Date)
    expiration_date: Mapped[date] = mapped_column(Date)
    term_months: Mapped[int] = mapped_column(Integer)
    billing_plan: Mapped[str] = mapped_column(String(20))
    policy_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    installment_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    autopay: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    # The premium lines the back-office set for the next term (PUT /renewal), if any.
    renewal_lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    policyholder: Mapped[Policyholder] = relationship(back_populates="policies")
    terms: Mapped[list[PolicyTerm]] = relationship(
        back_populates="policy", order_by="PolicyTerm.term_number"
    )


class PolicyTerm(Base):
    """One period of cover with its premium; a renewal adds the next term."""

    __tablename__ = "policy_terms"
    __table_args__ = (
        UniqueConstraint("policy_id", "term_number"),
        CheckConstraint("start_date < end_date", name="dates"),
        CheckConstraint("status IN ('active','cancelled','expired','pending')", name="status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    term_number: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    annual_premium: Mapped[int] = mapped_column(BigInteger)
    term_premium: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="active")
    cancelled_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    policy: Mapped[Policy] = relationship(back_populates="terms")
    lines: Mapped[list[PremiumLine]] = relationship(
        back_populates="term", order_by="PremiumLine.position"
    )
    installments: Mapped[list[Installment]] = relationship(
        back_populates="term", order_by="Installment.number"
    )


class PremiumLine(Base):
    """One premium line of a term; for pet policies, one per pet."""

    __tablename__ = "premium_lines"
    __table_args__ = (
        UniqueConstraint("term_id", "position"),
        CheckConstraint("annual_premium >= 0", name="premium"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    term_id: Mapped[int] = mapped_column(ForeignKey("policy_terms.id"))
    position: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200))
    annual_premium: Mapped[int] = mapped_column(BigInteger)
    pet_name: Mapped[str | None] = mapped_column(String(100))
    pet_species: Mapped[str | None] = mapped_column(String(50))
    pet_breed: Mapped[str | None] = mapped_column(String(100))
    pet_date_of_birth: Mapped[date | None] = mapped_column(Date)

    term: Mapped[PolicyTerm] = relationship(back_populates="lines")


class Installment(Base):
    """A scheduled premium amount with its due date; invoiced at most once."""

    __tablename__ = "installments"
    __table_args__ = (
        UniqueConstraint("term_id", "number"),
        CheckConstraint("status IN ('scheduled','invoiced','void')", name="status"),
        CheckConstraint("kind IN ('premium','adjustment')", name="kind"),
        Index("ix_installments_policy_id", "policy_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    term_id: Mapped[int] = mapped_column(ForeignKey("policy_terms.id"))
    number: Mapped[int] = mapped_column(Integer)
    due_date: Mapped[date] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger, default=0)
    # 'adjustment': an endorsement's delta billed at once when no installment was unbilled.
    kind: Mapped[str] = mapped_column(String(20), default="premium")
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    # The cancellation that voided it, so that a reinstatement restores exactly these.
    voided_by_cancellation_id: Mapped[int | None] = mapped_column(ForeignKey("cancellations.id"))

    term: Mapped[PolicyTerm] = relationship(back_populates="installments")


# APScheduler's job store table, created here so that the migrations own the whole schema.
apscheduler_jobs = Table(
    "apscheduler_jobs",
    Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


class InvoiceQueueItem(Base):
    """A scheduled installment not yet invoiced, by due date: what the invoicing job takes.

    Kept by database triggers on `installments` (insert, void, un-void); the invoicing job
    deletes the rows it invoices. Deleting from this narrow table is far cheaper than
    updating the installment row and its indexes, which is what lets a million invoices be
    issued close to the speed of a bare INSERT … SELECT.
    """

    __tablename__ = "invoice_queue"
    __table_args__ = (Index("ix_invoice_queue_due_date", "due_date", "installment_id"),)

    installment_id: Mapped[int] = mapped_column(
        ForeignKey("installments.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    due_date: Mapped[date] = mapped_column(Date)


class Endorsement(Base):
    __tablename__ = "endorsements"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"), index=True)
    term_id: Mapped[int] = mapped_column(ForeignKey("policy_terms.id"))
    effective_date: Mapped[date] = mapped_column(Date)
    old_annual_premium: Mapped[int] = mapped_column(BigInteger)
    new_annual_premium: Mapped[int] = mapped_column(BigInteger)
    delta_amount: Mapped[int] = mapped_column(BigInteger)
    days_remaining: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Cancellation(Base):
    __tablename__ = "cancellations"
    __table_args__ = (
        CheckConstraint("method IN ('pro_rata','short_rate')", name="method"),
        # One standing cancellation per term: a second, racing request loses on this index.
        Index(
            "uq_cancellations_standing_term",
            "term_id",
            unique=True,
            postgresql_where=text("reinstated_on IS NULL"),
            sqlite_where=text("reinstated_on IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    term_id: Mapped[int] = mapped_column(ForeignKey("policy_terms.id"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"), index=True)
    effective_date: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    earned_premium: Mapped[int] = mapped_column(BigInteger)
    refund_due: Mapped[int] = mapped_column(BigInteger)
    balance_due: Mapped[int] = mapped_column(BigInteger)
    reinstated_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('admin','billing','finance','auditor')", name="role"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class IdempotencyRecord(Base):
    """The first response to a POST with an Idempotency-Key, replayed for the same key."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    # NULL while the first request is still running.
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_content_type: Mapped[str | None] = mapped_column(String(100))
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invoice(Timestamps, Base):
    """One invoice per installment (unique), numbered INV-YYYY-NNNNNN in issue order.

    `lines` is written once at issue: [{kind, description, amount}] with kind in premium,
    installment_fee, policy_fee, adjustment, credit. Amount due = total − paid − written off.
    """

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(
            "status IN ('open','partially_paid','paid','void','written_off')", name="status"
        ),
        CheckConstraint("total >= 0", name="total"),
        CheckConstraint(
            "amount_paid >= 0 AND amount_written_off >= 0 "
            "AND amount_paid + amount_written_off <= total",
            name="not_over_settled",
        ),
        CheckConstraint(
            "(status = 'void' AND amount_due = 0) OR "
            "(status <> 'void' AND amount_due = total - amount_paid - amount_written_off)",
            name="due",
        ),
        Index("ix_invoices_policy_id", "policy_id"),
        Index("ix_invoices_policyholder_status", "policyholder_id", "status"),
        Index("ix_invoices_status_due_date", "status", "due_date"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    number_seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    number: Mapped[str] = mapped_column(String(30), unique=True)
    installment_id: Mapped[int | None] = mapped_column(ForeignKey("installments.id"), unique=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    policyholder_id: Mapped[int] = mapped_column(ForeignKey("policyholders.id"))
    currency: Mapped[str] = mapped_column(String(3))
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(BigInteger)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_written_off: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_due: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="open")
    void_reason: Mapped[str | None] = mapped_column(Text)
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"))
    # The journal entry that recorded the issue (one entry per invoicing batch).
    issue_entry_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entries.id"), index=True)


# Invoice numbers on PostgreSQL (SQLite, with one writer at a time, counts instead).
invoice_number_seq = Sequence("invoice_number_seq", metadata=Base.metadata)


class JobRun(Base):
    """One run of a job for a business date: what it did, for the API and for resuming."""

    __tablename__ = "job_runs"
    __table_args__ = (
        CheckConstraint("status IN ('running','succeeded','failed')", name="status"),
        Index("ix_job_runs_job_as_of", "job", "as_of"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job: Mapped[str] = mapped_column(String(50))
    as_of: Mapped[date] = mapped_column(Date)
    trigger: Mapped[str] = mapped_column(String(20), default="cli")
    status: Mapped[str] = mapped_column(String(20), default="running")
    stats: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class JournalEntry(Base):
    """A double-entry journal entry: its lines sum to zero in each currency."""

    __tablename__ = "journal_entries"
    __table_args__ = (Index("ix_journal_entries_kind_occurred_on", "kind", "occurred_on"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    occurred_on: Mapped[date] = mapped_column(Date)
    memo: Mapped[str | None] = mapped_column(Text)
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lines: Mapped[list[JournalLine]] = relationship(back_populates="entry")


class JournalLine(Base):
    """One leg: a signed amount (debit > 0, credit < 0) on an account, in a currency."""

    __tablename__ = "journal_lines"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="nonzero"),
        Index("ix_journal_lines_account_currency", "account", "currency"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    account: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    policyholder_id: Mapped[int | None] = mapped_column(ForeignKey("policyholders.id"))

    entry: Mapped[JournalEntry] = relationship(back_populates="lines")


# The other feature modules' tables join the same metadata (imported last: they use Base).
from . import payment_models, reconciliation_models, stripe_models  # noqa: E402,F401
