"""A payment attempt that failed, published (db.hooks.PAYMENT_FAILED) in the transaction
that records it: a Stripe PaymentIntent's `payment_intent.payment_failed` and an autopay
charge declined or refused. One attempt has one key (the autopay attempt's idempotency key,
else the PaymentIntent's id), so the job's record and the webhook of the same decline are
one failure to those who hear it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.db.hooks import PAYMENT_FAILED, publish
from premium_billing.invoicing.models import Invoice
from premium_billing.stripe_billing.rules import parse_id


def publish_failure(
    session: Session,
    settings: Settings,
    *,
    invoice_id: int,
    amount: int,
    currency: str,
    reason: str | None,
    attempt_id: str,
) -> bool:
    """Publish one failed attempt to pay `invoice_id`; False when the invoice is unknown."""
    holder = session.scalar(select(Invoice.policyholder_id).where(Invoice.id == invoice_id))
    if holder is None:
        return False
    failure = {
        "invoice_ids": [invoice_id],
        "policyholder_id": holder,
        "amount": amount,
        "currency": currency.upper(),
        "reason": reason,
        "attempt_id": attempt_id,
    }
    publish(
        session,
        PAYMENT_FAILED,
        failures=[failure],
        on=business_date(settings.timezone),
        settings=settings,
    )
    return True


def payment_intent_failed(session: Session, settings: Settings, pi: dict[str, Any]) -> bool:
    """A PaymentIntent for one of our invoices failed (its metadata names the invoice)."""
    metadata = pi.get("metadata") or {}
    invoice_id = parse_id("invoice", metadata.get("invoice_id"))
    amount = pi.get("amount")
    if invoice_id is None or not isinstance(amount, int) or not pi.get("currency"):
        return False
    error = pi.get("last_payment_error") or {}
    return publish_failure(
        session,
        settings,
        invoice_id=invoice_id,
        amount=amount,
        currency=str(pi["currency"]),
        reason=error.get("decline_code") or error.get("code"),
        attempt_id=str(metadata.get("autopay_attempt") or pi.get("id")),
    )
