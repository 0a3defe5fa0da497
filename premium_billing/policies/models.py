"""SQLAlchemy 2 typed models. The schema changes only through Alembic migrations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from premium_billing.db.base import Base, Id, Timestamps
from premium_billing.db.types import utcnow


class Policyholder(Timestamps, Base):
    __tablename__ = "policyholders"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    external_ref: Mapped[str | None] = mapped_column(String(100), unique=True)
    # How amounts and dates are written to them (emails): a CLDR locale such as en_US.
    locale: Mapped[str] = mapped_column(String(35), default="en_US", server_default="en_US")

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
    # Its invoice, if issued (invoices.installment_id is unique); named, not imported: the
    # invoicing feature builds on policies. Loaded with the installments (one query).
    invoice: Mapped[Invoice | None] = relationship(  # noqa: F821
        "Invoice",
        primaryjoin="Installment.id == foreign(Invoice.installment_id)",
        viewonly=True,
        uselist=False,
        lazy="selectin",
    )


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
    # `cancellation` or `lapse` (cancelled for non-payment): both settle the account alike.
    kind: Mapped[str] = mapped_column(
        String(20), default="cancellation", server_default="cancellation"
    )
    # The settlement's final invoice of earned but unbilled premium, if any.
    final_invoice_id: Mapped[int | None] = mapped_column(
        ForeignKey("invoices.id", use_alter=True)  # invoices → installments → cancellations
    )
