"""What each Stripe event means for billing: one handler per event type (`handle`), and
the set-based posting of many plain `payment_intent.succeeded` events (`post_many`).

The inbound edge (`webhooks/`: verify, inbox, dispatch, drain) stores each event once and
calls these in the transaction that marks it processed; nothing here commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from premium_billing.clock import business_date, business_date_of
from premium_billing.config import Settings
from premium_billing.db.bulk import insert_rows
from premium_billing.db.types import utcnow
from premium_billing.errors import Conflict
from premium_billing.payments.models import Payment
from premium_billing.stripe_billing import failures, payouts
from premium_billing.stripe_billing import payments as stripe_payments
from premium_billing.stripe_billing import refunds as stripe_refunds
from premium_billing.stripe_billing.gateway import GatewayError
from premium_billing.stripe_billing.models import AutopayAttempt, StripePaymentState
from premium_billing.stripe_billing.payments import Facts
from premium_billing.stripe_billing.rules import dispute_money, money_received, parse_id

log = logging.getLogger(__name__)


class EventError(Exception):
    """The event cannot be processed now (left `failed` for a retry)."""


@dataclass(frozen=True)
class Handled:
    status: str = "processed"  # or "ignored": stored, nothing to do
    payment_id: int | None = None
    posted: bool = False


Handler = Callable[[Session, Settings, dict[str, Any]], Handled]


# ----------------------------------------------------------------------------- handlers


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def object_id(value: Any) -> str | None:
    """The id of an expandable field (a string, or the expanded object's `id`)."""
    if isinstance(value, dict):
        value = value.get("id")
    return None if value is None else str(value)


def _settle(session: Session, settings: Settings, facts: Facts) -> Handled:
    state = stripe_payments.merge(session, facts, settings.timezone)
    settled = stripe_payments.settle(session, settings, state)
    if facts.amount == 0 and settled.payment_id is None:
        return Handled(status="ignored")  # no money moved (an authorization): nothing to post
    return Handled(payment_id=settled.payment_id, posted=settled.posted)


def _mark_attempt(session: Session, pi: dict[str, Any], status: str, code: str | None) -> None:
    """An autopay charge's outcome learnt from the event (heals a job that crashed)."""
    key = (pi.get("metadata") or {}).get("autopay_attempt")
    if not key:
        return
    values: dict[str, Any] = {"status": status, "payment_intent_id": pi.get("id")}
    if code:
        values["failure_code"] = code
    done = AutopayAttempt.status.in_(("pending",) if status == "failed" else ("pending", "failed"))
    session.execute(
        update(AutopayAttempt)
        .where(AutopayAttempt.idempotency_key == key, done)
        .values(**values, updated_at=utcnow())
    )


def payment_intent_succeeded(session: Session, settings: Settings, pi: dict[str, Any]) -> Handled:
    _mark_attempt(session, pi, "succeeded", None)
    return _settle(
        session,
        settings,
        Facts(
            payment_intent_id=str(pi["id"]),
            charge_id=object_id(pi.get("latest_charge")),
            succeeded=True,
            amount=money_received(pi.get("amount_received"), pi.get("amount")),
            currency=str(pi["currency"]),
            metadata=pi.get("metadata") or {},
            customer_id=object_id(pi.get("customer")),
            created=_int(pi.get("created")),
        ),
    )


def payment_intent_failed(session: Session, settings: Settings, pi: dict[str, Any]) -> Handled:
    error = pi.get("last_payment_error") or {}
    _mark_attempt(session, pi, "failed", error.get("decline_code") or error.get("code"))
    failures.payment_intent_failed(session, settings, pi)
    return Handled()


def checkout_paid(session: Session, settings: Settings, cs: dict[str, Any]) -> Handled:
    # Only money that arrived: delayed methods complete `unpaid` and settle later.
    if cs.get("mode") != "payment" or cs.get("payment_status") != "paid":
        return Handled(status="ignored")
    details = cs.get("customer_details") or {}
    metadata = dict(cs.get("metadata") or {})
    if cs.get("client_reference_id") and "invoice_id" not in metadata:
        metadata["invoice_id"] = cs["client_reference_id"]
    return _settle(
        session,
        settings,
        Facts(
            payment_intent_id=str(object_id(cs.get("payment_intent")) or cs["id"]),
            succeeded=True,
            amount=_int(cs.get("amount_total")),
            currency=str(cs["currency"]),
            metadata=metadata,
            payer_name=details.get("name"),
            customer_id=object_id(cs.get("customer")),
            created=_int(cs.get("created")),
        ),
    )


def checkout_failed(session: Session, settings: Settings, cs: dict[str, Any]) -> Handled:
    log.info("checkout payment failed", extra={"event": "checkout_failed", "session": cs["id"]})
    return Handled()


def charge_refunded(session: Session, settings: Settings, charge: dict[str, Any]) -> Handled:
    """A refund of the charge: one made in Stripe's Dashboard is recorded (and paid out);
    ours (owed by a cancellation or by hand, sent by us) are settled or reopened as Stripe
    says (`stripe_billing.refunds.charge_refunds`)."""
    billing = charge.get("billing_details") or {}
    handled = _settle(
        session,
        settings,
        Facts(
            payment_intent_id=str(object_id(charge.get("payment_intent")) or charge["id"]),
            charge_id=str(charge["id"]),
            succeeded=bool(charge.get("paid", True)),
            amount=money_received(
                charge.get("amount_captured"), charge["amount"], captured=charge.get("captured")
            ),
            currency=str(charge["currency"]),
            metadata=charge.get("metadata") or {},
            payer_name=billing.get("name"),
            customer_id=object_id(charge.get("customer")),
            created=_int(charge.get("created")),
            amount_refunded=_int(charge.get("amount_refunded")) or 0,
        ),
    )
    try:
        stripe_refunds.charge_refunds(session, settings, charge)
    except stripe_refunds.RefundsUnavailable as error:
        raise EventError(
            f"the refunds of charge {charge.get('id')} cannot be listed: {error}"
        ) from error
    return handled


def refund_event(session: Session, settings: Settings, refund: dict[str, Any]) -> Handled:
    """refund.created / refund.updated / refund.failed: one of our refunds succeeded (paid
    out) or failed (owed again). A Dashboard refund's is ignored (charge.refunded has it)."""
    ours = stripe_refunds.refund_event(session, settings, refund)
    return Handled(status="processed" if ours else "ignored")


def dispute_handler(event_type: str) -> Handler:
    """The handler of one `charge.dispute.*` type: what the dispute did to the money
    (`rules.dispute_money`: an inquiry nothing; funds withdrawn, the payment reversed;
    reinstated, given back) merged into its PaymentIntent's state, then settled."""

    def charge_dispute(session: Session, settings: Settings, dispute: dict[str, Any]) -> Handled:
        pi_id = object_id(dispute.get("payment_intent"))
        charge_id = object_id(dispute.get("charge"))
        if pi_id is None and charge_id is not None:
            pi_id = stripe_payments.state_by_charge(session, charge_id)
        if pi_id is None:
            # Not yet known which payment: a retry finds it once the charge's event is in.
            raise EventError(f"dispute {dispute.get('id')} of an unknown charge {charge_id}")
        status = dispute.get("status")
        money = dispute_money(event_type, None if status is None else str(status))
        return _settle(
            session,
            settings,
            Facts(
                payment_intent_id=pi_id,
                charge_id=charge_id,
                dispute_id=str(dispute["id"]),
                dispute_amount=_int(dispute.get("amount")),
                dispute_status=str(status or "needs_response"),
                dispute_withdrawn=money.withdrawn,
                dispute_reinstated=money.reinstated,
            ),
        )

    return charge_dispute


def payout_paid(session: Session, settings: Settings, payout: dict[str, Any]) -> Handled:
    """Kept for deposit reconciliation (see `payouts.record_payout`). Its balance
    transactions are listed from Stripe: when Stripe cannot be reached the event waits
    (`failed`, the reason stored, retried; listed by the day's reconciliation report as a
    pending payout)."""
    try:
        gateway = stripe_payments.gateway(settings)
        transactions = gateway.payout_balance_transactions(str(payout["id"]))
    except (GatewayError, Conflict) as error:
        raise EventError(
            f"the balance transactions of payout {payout.get('id')} cannot be listed "
            f"from Stripe: {error}"
        ) from error
    payouts.record_payout(
        session,
        payout_id=str(payout["id"]),
        amount=int(payout["amount"]),
        currency=str(payout["currency"]).upper(),
        arrival_date=datetime.fromtimestamp(int(payout["arrival_date"]), UTC).date(),
        balance_transactions=[asdict(t) for t in transactions],
        settings=settings,
    )
    return Handled()


def setup_intent_succeeded(session: Session, settings: Settings, seti: dict[str, Any]) -> Handled:
    known = stripe_payments.save_payment_method(session, seti)
    return Handled(status="processed" if known else "ignored")


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": payment_intent_succeeded,
    "payment_intent.payment_failed": payment_intent_failed,
    "checkout.session.completed": checkout_paid,
    "checkout.session.async_payment_succeeded": checkout_paid,
    "checkout.session.async_payment_failed": checkout_failed,
    "charge.refunded": charge_refunded,
    "refund.created": refund_event,
    "refund.updated": refund_event,
    "refund.failed": refund_event,
    **{
        f"charge.dispute.{what}": dispute_handler(f"charge.dispute.{what}")
        for what in ("created", "updated", "closed", "funds_withdrawn", "funds_reinstated")
    },
    "payout.paid": payout_paid,
    "setup_intent.succeeded": setup_intent_succeeded,
}


def handle(session: Session, settings: Settings, event: dict[str, Any]) -> Handled:
    handler = HANDLERS.get(str(event.get("type")))
    if handler is None:
        return Handled(status="ignored")  # stored for the record, nothing to do
    obj = (event.get("data") or {}).get("object")
    if not isinstance(obj, dict):
        raise EventError("event has no data.object")
    return handler(session, settings, obj)


# ----------------------------------------------------------------------------- many at once


@dataclass(frozen=True)
class PlainSucceeded:
    """A `payment_intent.succeeded` for an invoice named in its metadata, not an autopay
    charge: the event most frequent at volume, which `post_many` posts set-based."""

    key: int  # the caller's handle on the event (its inbox row)
    pi_id: str
    charge_id: str | None
    amount: int
    currency: str
    metadata: dict[str, Any]
    customer_id: str | None
    created: int | None  # Stripe's Unix timestamp; received on its business date


def plain_succeeded(key: int, event: dict[str, Any]) -> PlainSucceeded | None:
    """The event as a PlainSucceeded, or None (then it is handled one by one)."""
    try:
        if event.get("type") != "payment_intent.succeeded":
            return None
        pi = event["data"]["object"]
        metadata = pi.get("metadata") or {}
        amount = money_received(pi.get("amount_received"), pi["amount"])
        if parse_id("invoice", metadata.get("invoice_id")) is None:
            return None
        if metadata.get("autopay_attempt") or not amount or amount < 0:
            return None  # 0 received posts nothing: the one-by-one way says so
        created = pi.get("created")
        return PlainSucceeded(
            key=key,
            pi_id=str(pi["id"]),
            charge_id=object_id(pi.get("latest_charge")),
            amount=amount,
            currency=str(pi["currency"]).upper(),
            metadata=dict(metadata),
            customer_id=object_id(pi.get("customer")),
            created=int(created) if created else None,
        )
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        return None  # the one-by-one way records why it fails


def post_many(
    session: Session, settings: Settings, events: Sequence[PlainSucceeded]
) -> dict[int, int]:
    """Post set-based the events whose order cannot matter, {key: payment id}: each the
    first of its PaymentIntent and of its invoice, about a PaymentIntent never seen before.
    The result is what handling each in turn would give (the same `post_succeeded` the
    one-by-one way calls with a batch of one). The others are left to the caller to handle
    one by one. Flushed, not committed."""
    pi_ids = [e.pi_id for e in events]
    known = set(
        session.scalars(
            select(StripePaymentState.payment_intent_id).where(
                StripePaymentState.payment_intent_id.in_(pi_ids)
            )
        )
    )
    known.update(
        session.scalars(
            select(Payment.external_id).where(
                Payment.source == "stripe", Payment.external_id.in_(pi_ids)
            )
        )
    )
    chosen: list[PlainSucceeded] = []
    seen_pi: set[str] = set()
    seen_invoice: set[int | None] = set()
    for e in events:
        invoice = parse_id("invoice", e.metadata.get("invoice_id"))
        if e.pi_id in known or e.pi_id in seen_pi or invoice in seen_invoice:
            continue
        seen_pi.add(e.pi_id)
        seen_invoice.add(invoice)
        chosen.append(e)
    if not chosen:
        return {}
    today = business_date(settings.timezone)
    created_on = {
        e.pi_id: business_date_of(e.created, settings.timezone) if e.created else None
        for e in chosen
    }
    posted = stripe_payments.post_succeeded(
        session,
        settings,
        [
            stripe_payments.Succeeded(
                payment_intent_id=e.pi_id,
                charge_id=e.charge_id,
                amount=e.amount,
                currency=e.currency,
                metadata=e.metadata,
                received_on=created_on[e.pi_id] or today,
            )
            for e in chosen
        ],
        memo="stripe webhooks",
    )
    payment_ids = [pid for pid, _ in posted]
    insert_rows(
        session,
        StripePaymentState.__table__,
        [
            {
                "payment_intent_id": e.pi_id,
                "charge_id": e.charge_id,
                "succeeded": True,
                "amount": e.amount,
                "currency": e.currency,
                "stripe_metadata": e.metadata,
                "payer_name": None,
                "customer_id": e.customer_id,
                "created_on": created_on[e.pi_id],
                "amount_refunded": 0,
                "payment_id": pid,
            }
            for e, pid in zip(chosen, payment_ids, strict=True)
        ],
    )
    log.info(
        "stripe events posted",
        extra={"event": "webhooks_posted", "count": len(chosen),
               "unmatched": sum(why is not None for _, why in posted)},
    )  # fmt: skip
    return {e.key: pid for e, pid in zip(chosen, payment_ids, strict=True)}
