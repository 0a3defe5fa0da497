"""Autopay: charge due invoices of autopay policies off-session with the saved card.

Attempt 0 is made on the due date, the retries AUTOPAY_RETRY_DAYS after it (+3, +5, +7);
a run makes at most one attempt per invoice, the latest one whose day has come. Each
attempt row (unique per invoice and attempt number) holds the idempotency key and is
committed before the call, so a run that stopped half-way resumes with the same keys and
Stripe replays what it already did: never two charges. A succeeded charge is posted at
once, the same way its webhook would post it (whichever comes first; the other is a no-op).
Outbound calls are paced below STRIPE_OUTBOUND_RATE requests per second.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.policies.models import Policy
from premium_billing.stripe_billing import failures
from premium_billing.stripe_billing import payments as stripe_payments
from premium_billing.stripe_billing.gateway import GatewayError, GatewayUnavailable
from premium_billing.stripe_billing.models import AutopayAttempt, StripeCustomer
from premium_billing.stripe_billing.payments import Facts

log = logging.getLogger(__name__)

MIN_CHARGE = 50  # Stripe's minimum charge in minor units (about 0.50)


@dataclass
class AutopayStats:
    charged: int = 0
    succeeded: int = 0
    declined: int = 0
    unavailable: int = 0
    refused: int = 0
    amount_collected: int = 0
    by_attempt: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "charged": self.charged,
            "succeeded": self.succeeded,
            "declined": self.declined,
            "unavailable": self.unavailable,
            "refused": self.refused,
            "amount_collected": self.amount_collected,
            "by_attempt": dict(sorted(self.by_attempt.items())),
        }


class Pacer:
    """At most `rate` calls per second (a steady spacing, no bursts)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / rate
        self.clock = clock
        self.next_at = 0.0

    def wait(self) -> None:
        now = self.clock()
        if now < self.next_at:
            time.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


def attempt_due(due_date: date, as_of: date, offsets: list[int]) -> tuple[int, date] | None:
    """The latest attempt (number, day) whose day has come, None before the due date."""
    days = [0, *offsets]
    latest = None
    for number, offset in enumerate(days):
        day = due_date + timedelta(days=offset)
        if day <= as_of:
            latest = (number, day)
    return latest


# A lapsed, cancelled or expired policy is charged nothing (polar#13077: no charge after
# the customer cancelled); a paid invoice is no longer payable, so its retries stop too.
CHARGED_STATUSES = ("active", "past_due", "in_grace")


def _candidates(db: Database, as_of: date, after_id: int, limit: int) -> list[tuple[Any, ...]]:
    with db.session() as session:
        rows = session.execute(
            select(
                Invoice.id,
                Invoice.due_date,
                Invoice.amount_due,
                Invoice.currency,
                Policy.product,
                StripeCustomer.customer_id,
                StripeCustomer.payment_method_id,
            )
            .join(Policy, Policy.id == Invoice.policy_id)
            .join(StripeCustomer, StripeCustomer.policyholder_id == Invoice.policyholder_id)
            .where(
                Invoice.id > after_id,
                Invoice.status.in_(PAYABLE_STATUSES),
                Invoice.due_date <= as_of,
                Invoice.amount_due >= MIN_CHARGE,
                Policy.autopay.is_(True),
                Policy.status.in_(CHARGED_STATUSES),
                StripeCustomer.payment_method_id.is_not(None),
            )
            .order_by(Invoice.id)
            .limit(limit)
        ).all()
    return [tuple(r) for r in rows]


def _claim(
    db: Database, invoice_id: int, number: int, day: date, amount: int, currency: str, run_id: int
) -> AutopayAttempt | None:
    """The attempt to make: a new row (committed before the call) or a pending one to resume
    with its key; None when this attempt was already made (or an earlier one succeeded)."""
    with db.session() as session:
        rows = list(
            session.scalars(select(AutopayAttempt).where(AutopayAttempt.invoice_id == invoice_id))
        )
        if any(r.status == "succeeded" for r in rows):
            return None
        pending = [r for r in rows if r.status == "pending"]
        if pending:
            return pending[0]
        if any(r.attempt >= number for r in rows):
            return None
        attempt = AutopayAttempt(
            invoice_id=invoice_id,
            attempt=number,
            scheduled_on=day,
            amount=amount,
            currency=currency,
            idempotency_key=f"autopay-inv_{invoice_id}-{number}",
            status="pending",
            job_run_id=run_id,
        )
        session.add(attempt)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()  # another run claimed it first
            return None
        return attempt


def _record(db: Database, settings: Settings, attempt: AutopayAttempt, result: Any) -> str:
    """Store a charge's outcome; a success is posted in the same transaction."""
    with db.session() as session:
        row = session.scalar(
            select(AutopayAttempt).where(AutopayAttempt.id == attempt.id).with_for_update()
        )
        assert row is not None
        row.payment_intent_id = result.id
        if result.succeeded:
            invoice = session.get(Invoice, attempt.invoice_id)
            assert invoice is not None
            state = stripe_payments.merge(
                session,
                Facts(
                    payment_intent_id=result.id,
                    succeeded=True,
                    amount=attempt.amount,
                    currency=attempt.currency,
                    metadata={
                        **stripe_payments.invoice_metadata(invoice),
                        "autopay_attempt": attempt.idempotency_key,
                    },
                ),
                settings.timezone,
            )
            stripe_payments.settle(session, settings, state)
            row.status = "succeeded"
        elif row.status == "pending":
            row.status = "failed"
            row.failure_code = result.failure_code or result.status
            _publish_failure(session, settings, row)
        session.commit()
        return row.status


def _publish_failure(session: Session, settings: Settings, row: AutopayAttempt) -> None:
    failures.publish_failure(
        session,
        settings,
        invoice_id=row.invoice_id,
        amount=row.amount,
        currency=row.currency,
        reason=row.failure_code,
        attempt_id=row.idempotency_key,
    )


def run_autopay(
    db: Database,
    settings: Settings,
    as_of: date,
    *,
    job_run_id: int,
    batch_size: int = 500,
    retry_days: dict[str, list[int]] | None = None,
) -> AutopayStats:
    """Charge every autopay invoice whose attempt day has come (see the module doc).
    `retry_days`: the retry days per product (the delinquency plans'; default
    AUTOPAY_RETRY_DAYS for every product)."""
    stats = AutopayStats()
    pacer = Pacer(settings.stripe_outbound_rate)
    offsets = settings.autopay_retry_offsets
    after_id = 0
    gateway = None
    while True:
        batch = _candidates(db, as_of, after_id, batch_size)
        if not batch:
            break
        after_id = batch[-1][0]
        for invoice_id, due_date, amount_due, currency, product, customer, method in batch:
            days = offsets if retry_days is None else retry_days.get(product, offsets)
            due = attempt_due(due_date, as_of, days)
            if due is None:
                continue
            attempt = _claim(db, invoice_id, due[0], due[1], amount_due, currency, job_run_id)
            if attempt is None:
                continue
            gateway = gateway or stripe_payments.gateway(settings)
            with db.session() as session:
                invoice = session.get(Invoice, invoice_id)
                assert invoice is not None
                metadata = {
                    **stripe_payments.invoice_metadata(invoice),
                    "autopay_attempt": attempt.idempotency_key,
                }
            pacer.wait()
            stats.charged += 1
            try:
                result = gateway.charge_off_session(
                    amount=attempt.amount,
                    currency=attempt.currency,
                    customer=customer,
                    payment_method=method,
                    metadata=metadata,
                    idempotency_key=attempt.idempotency_key,
                )
            except GatewayUnavailable:
                stats.unavailable += 1  # pending: the next run resumes with the same key
                continue
            except GatewayError as error:
                stats.refused += 1
                with db.session() as session:
                    row = session.get(AutopayAttempt, attempt.id)
                    assert row is not None
                    row.status = "failed"
                    row.failure_code = (error.code or "request_refused")[:100]
                    _publish_failure(session, settings, row)
                    session.commit()
                continue
            status = _record(db, settings, attempt, result)
            key = str(attempt.attempt)
            stats.by_attempt[key] = stats.by_attempt.get(key, 0) + 1
            if status == "succeeded":
                stats.succeeded += 1
                stats.amount_collected += attempt.amount
            else:
                stats.declined += 1
    log.info("autopay run", extra={"event": "autopay_run", **stats.as_dict()})
    return stats
