"""Collections' tables: each policy's delinquency state, and every step taken (once)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from premium_billing.db.base import Base, Id
from premium_billing.db.types import utcnow


class Delinquency(Base):
    """A policy's delinquency state as the last evaluation left it (`policies.status` is kept
    in step). `through`: the days after the anchor that the runs have already stepped."""

    __tablename__ = "delinquencies"
    __table_args__ = (
        CheckConstraint(
            "state IN ('active','past_due','in_grace','lapsed','reinstated')", name="state"
        ),
        Index("ix_delinquencies_state", "state", "policy_id"),
    )

    policy_id: Mapped[int] = mapped_column(
        ForeignKey("policies.id"), primary_key=True, autoincrement=False
    )
    state: Mapped[str] = mapped_column(String(20))
    since: Mapped[date] = mapped_column(Date)
    anchor_due_date: Mapped[date | None] = mapped_column(Date)
    amount_overdue: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    through: Mapped[int | None] = mapped_column(Integer)
    evaluated_on: Mapped[date] = mapped_column(Date)
    # The next day something happens if nothing is paid: the job skips the policy before it.
    next_on: Mapped[date | None] = mapped_column(Date)
    lapsed_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CollectionStep(Base):
    """A step taken for a policy: one row per (policy, step, days after the due date,
    anchor), a unique constraint, so two runs or two processes never take it twice."""

    __tablename__ = "collection_steps"
    __table_args__ = (
        CheckConstraint(
            "step IN ('reminder','grace_notice','final_notice','late_fee','lapse',"
            "'reinstatement','write_off')",
            name="step",
        ),
        CheckConstraint("status IN ('taken','pending','failed')", name="status"),
        Index(
            "uq_collection_steps_once",
            "policy_id",
            "step",
            "days_after_due",
            "anchor_due_date",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("policies.id"))
    # The anchor: the oldest unpaid installment and its due date when the step was taken.
    installment_id: Mapped[int | None] = mapped_column(ForeignKey("installments.id"))
    anchor_due_date: Mapped[date] = mapped_column(Date)
    step: Mapped[str] = mapped_column(String(20))
    days_after_due: Mapped[int] = mapped_column(Integer)
    taken_on: Mapped[date] = mapped_column(Date)
    amount_overdue: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # pending: a lapse or fee that runs after the step's row (its own transaction).
    status: Mapped[str] = mapped_column(String(20), default="taken")
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
