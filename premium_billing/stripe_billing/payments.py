"""Stripe money in: Checkout for an invoice, setup-mode Checkout for autopay, and the posting
of what Stripe reports (succeeded, refunded, disputed) whatever order the events come in.

Facts about a PaymentIntent are merged into one `StripePaymentState` row (they only grow:
refunded amounts are cumulative, a closed dispute outranks an open one), then `settle`
brings the postings to what those facts imply, always in the same order (receive and
allocate → refund → reverse for a dispute → reinstate if won). So every order of events
ends in the same payments, allocations and invoice amounts.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from premium_billing.clock import business_date, business_date_of
from premium_billing.config import Settings
from premium_billing.db.types import utcnow
from premium_billing.errors import Conflict, NotFound
from premium_billing.invoicing.models import Invoice
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.journal import post
from premium_billing.payments import posting as payments
from premium_billing.payments.models import Allocation, Payment, Refund
from premium_billing.policies.models import Policy, Policyholder
from premium_billing.stripe_billing.gateway import (
    CheckoutSession,
    GatewayUnavailable,
    StripeGateway,
)
from premium_billing.stripe_billing.models import StripeCustomer, StripePaymentState, StripeRequest

log = logging.getLogger(__name__)

_PREFIX = {"invoice": "inv", "policy": "pol", "policyholder": "ph"}


def format_id(kind: str, number: int | None) -> str | None:
    """The public id ('inv_12') Stripe metadata carries (the API's format)."""
    return None if number is None else f"{_PREFIX[kind]}_{number}"


def parse_id(kind: str, text: object) -> int | None:
    prefix = _PREFIX[kind] + "_"
    if not isinstance(text, str) or not text.startswith(prefix):
        return None
    digits = text[len(prefix) :]
    return int(digits) if digits.isdigit() and not digits.startswith("0") else None


PAYABLE_STATUSES = ("open", "partially_paid")
CLOSED_DISPUTE = ("won", "lost", "warning_closed")
# A stored Checkout Session is offered again for this long (Stripe's expire after 24 h).
SESSION_REUSE = timedelta(hours=23)


# ----------------------------------------------------------------------------- gateway


_GATEWAYS: dict[tuple[str, str, int, float], StripeGateway] = {}


def gateway(settings: Settings) -> StripeGateway:
    """The Stripe adapter for these settings (one per key and base address, reused)."""
    key = (
        settings.stripe_secret_key,
        settings.stripe_api_base,
        settings.stripe_max_network_retries,
        settings.stripe_timeout_seconds,
    )
    found = _GATEWAYS.get(key)
    if found is None:
        if not settings.stripe_secret_key:
            raise Conflict("Stripe is not configured (STRIPE_SECRET_KEY is empty)")
        found = StripeGateway(
            settings.stripe_secret_key,
            api_base=settings.stripe_api_base or None,
            max_network_retries=settings.stripe_max_network_retries,
            timeout_seconds=settings.stripe_timeout_seconds,
        )
        _GATEWAYS[key] = found
    return found


def invoice_metadata(invoice: Invoice) -> dict[str, str]:
    """What every Stripe object made for an invoice carries (public ids, never personal data)."""
    return {
        "invoice_id": format_id("invoice", invoice.id) or "",
        "invoice_number": invoice.number,
        "policy_id": format_id("policy", invoice.policy_id) or "",
        "policyholder_id": format_id("policyholder", invoice.policyholder_id) or "",
    }


# ----------------------------------------------------------------------------- outbound keys


def _stored_request(
    session: Session, purpose: str, target: str, amount: int | None
) -> StripeRequest:
    """The request to (re)send: a pending one of the same purpose keeps its key (a retry);
    otherwise a new key is stored and committed before the call."""
    pending = session.scalar(
        select(StripeRequest)
        .where(
            StripeRequest.purpose == purpose,
            StripeRequest.target == target,
            StripeRequest.status == "pending",
            StripeRequest.amount.is_(None) if amount is None else StripeRequest.amount == amount,
            StripeRequest.created_at > utcnow() - SESSION_REUSE,
        )
        .order_by(StripeRequest.id.desc())
        .limit(1)
    )
    if pending is not None:
        return pending
    request = StripeRequest(
        idempotency_key=f"{purpose}-{target}-{uuid.uuid4().hex}",
        purpose=purpose,
        target=target,
        amount=amount,
        status="pending",
    )
    session.add(request)
    session.commit()
    return request


def _finish_request(
    session: Session, request: StripeRequest, result_id: str, url: str | None = None
) -> None:
    request.status = "succeeded"
    request.result_id = result_id
    request.result_url = url
    session.commit()


def _fail_request(session: Session, request: StripeRequest, error: Exception) -> None:
    # Unavailable: keep it pending so the retry reuses the key; refused: a new key next time.
    if not isinstance(error, GatewayUnavailable):
        request.status = "failed"
    request.error = str(error)[:2000]
    session.commit()


def ensure_customer(session: Session, settings: Settings, policyholder_id: int) -> StripeCustomer:
    """The policyholder's Stripe customer, created once (key stored before the call)."""
    found = session.scalar(
        select(StripeCustomer).where(StripeCustomer.policyholder_id == policyholder_id)
    )
    if found is not None:
        return found
    holder = session.get(Policyholder, policyholder_id)
    if holder is None:
        raise NotFound("policyholder not found")
    target = format_id("policyholder", policyholder_id) or ""
    request = _stored_request(session, "customer", target, None)
    try:
        customer_id = gateway(settings).create_customer(
            email=holder.email,
            name=holder.name,
            metadata={"policyholder_id": target},
            idempotency_key=request.idempotency_key,
        )
    except Exception as error:
        _fail_request(session, request, error)
        raise
    customer = StripeCustomer(policyholder_id=policyholder_id, customer_id=customer_id)
    session.add(customer)
    request.status = "succeeded"
    request.result_id = customer_id
    session.commit()
    return customer


# ----------------------------------------------------------------------------- pay online


def start_checkout(session: Session, settings: Settings, invoice_id: int) -> CheckoutSession:
    """A Checkout Session for the invoice's amount due. Paid, void or written-off: Conflict."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound("invoice not found")
    if invoice.status not in PAYABLE_STATUSES or invoice.amount_due <= 0:
        raise Conflict(f"the invoice is {invoice.status}; there is nothing to pay")
    target = format_id("invoice", invoice.id) or ""
    reusable = session.scalar(
        select(StripeRequest)
        .where(
            StripeRequest.purpose == "checkout",
            StripeRequest.target == target,
            StripeRequest.amount == invoice.amount_due,
            StripeRequest.status == "succeeded",
            StripeRequest.created_at > utcnow() - SESSION_REUSE,
        )
        .order_by(StripeRequest.id.desc())
        .limit(1)
    )
    if reusable is not None and reusable.result_id and reusable.result_url:
        return CheckoutSession(id=reusable.result_id, url=reusable.result_url)
    customer = session.scalar(
        select(StripeCustomer.customer_id).where(
            StripeCustomer.policyholder_id == invoice.policyholder_id
        )
    )
    metadata = invoice_metadata(invoice)
    request = _stored_request(session, "checkout", target, invoice.amount_due)
    try:
        result = gateway(settings).create_checkout_session(
            amount=invoice.amount_due,
            currency=invoice.currency,
            description=f"Invoice {invoice.number}",
            metadata=metadata,
            client_reference_id=target,
            success_url=settings.checkout_success_url,
            cancel_url=settings.checkout_cancel_url,
            customer=customer,
            idempotency_key=request.idempotency_key,
        )
    except Exception as error:
        _fail_request(session, request, error)
        raise
    _finish_request(session, request, result.id, result.url)
    return result


def start_autopay_setup(
    session: Session, settings: Settings, policyholder_id: int
) -> CheckoutSession:
    """A setup-mode Checkout Session that saves a card for off-session autopay charges."""
    customer = ensure_customer(session, settings, policyholder_id)
    target = format_id("policyholder", policyholder_id) or ""
    request = _stored_request(session, "setup", target, None)
    try:
        result = gateway(settings).create_setup_session(
            customer=customer.customer_id,
            success_url=settings.checkout_success_url,
            cancel_url=settings.checkout_cancel_url,
            metadata={"policyholder_id": target, "purpose": "autopay"},
            idempotency_key=request.idempotency_key,
        )
    except Exception as error:
        _fail_request(session, request, error)
        raise
    _finish_request(session, request, result.id, result.url)
    return result


def save_payment_method(session: Session, setup_intent: dict[str, Any]) -> bool:
    """setup_intent.succeeded: the card becomes the customer's autopay method. Returns
    whether a known customer was updated (an unknown one is ignored)."""
    customer_id = setup_intent.get("customer")
    method = setup_intent.get("payment_method")
    if isinstance(method, dict):
        method = method.get("id")
    if not customer_id or not method or setup_intent.get("status") != "succeeded":
        return False
    customer = session.scalar(
        select(StripeCustomer).where(StripeCustomer.customer_id == customer_id).with_for_update()
    )
    if customer is None:
        return False
    created = datetime.fromtimestamp(int(setup_intent.get("created") or 0), UTC)
    # The newest setup wins, whatever order the events arrive in.
    if customer.payment_method_saved_at is None or customer.payment_method_saved_at <= created:
        customer.payment_method_id = str(method)
        customer.payment_method_saved_at = created
        session.flush()
    return True


# ----------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Facts:
    """What one event says about a PaymentIntent (None: the event does not say)."""

    payment_intent_id: str
    charge_id: str | None = None
    succeeded: bool = False
    amount: int | None = None
    currency: str | None = None
    metadata: dict[str, Any] | None = None
    payer_name: str | None = None
    customer_id: str | None = None
    created: int | None = None
    amount_refunded: int | None = None
    dispute_id: str | None = None
    dispute_amount: int | None = None
    dispute_status: str | None = None
    failure_code: str | None = None


def _state_row(session: Session, pi_id: str) -> StripePaymentState:
    """The state row of a PaymentIntent, created if absent, locked (FOR UPDATE)."""
    values = {"payment_intent_id": pi_id, "succeeded": False, "amount_refunded": 0,
              "updated_at": utcnow()}  # fmt: skip
    make = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        make(StripePaymentState)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["payment_intent_id"])
    )
    state = session.scalar(
        select(StripePaymentState)
        .where(StripePaymentState.payment_intent_id == pi_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert state is not None
    return state


def merge(session: Session, facts: Facts, timezone: tzinfo) -> StripePaymentState:
    """Merge what an event says into the PaymentIntent's state (facts only grow); its
    creation day is the business date in `timezone` (BILLING_TIMEZONE)."""
    state = _state_row(session, facts.payment_intent_id)
    if facts.succeeded and not state.succeeded:
        state.succeeded = True
    for name in ("charge_id", "amount", "payer_name", "customer_id", "failure_code"):
        value = getattr(facts, name)
        if value is not None and getattr(state, name) is None:
            setattr(state, name, value)
    if facts.currency and state.currency is None:
        state.currency = facts.currency.upper()
    if facts.metadata and not state.stripe_metadata:
        state.stripe_metadata = dict(facts.metadata)
    if facts.created is not None and state.created_on is None:
        state.created_on = business_date_of(int(facts.created), timezone)
    if facts.amount_refunded is not None and facts.amount_refunded > state.amount_refunded:
        state.amount_refunded = facts.amount_refunded  # cumulative: set, never add
    if facts.dispute_id is not None:
        state.dispute_id = facts.dispute_id
        if facts.dispute_amount is not None:
            state.dispute_amount = facts.dispute_amount
        if state.dispute_status not in CLOSED_DISPUTE:
            state.dispute_status = facts.dispute_status
    session.flush()
    return state


def state_by_charge(session: Session, charge_id: str) -> str | None:
    return session.scalar(
        select(StripePaymentState.payment_intent_id).where(
            StripePaymentState.charge_id == charge_id
        )
    )


# ----------------------------------------------------------------------------- settle


@dataclass
class Settled:
    payment_id: int | None = None
    posted: bool = False  # a payment was received by this call


def _invoice_from(metadata: dict[str, Any] | None) -> int | None:
    if not metadata:
        return None
    return parse_id("invoice", metadata.get("invoice_id"))


def mismatch(metadata: dict[str, Any], amount: int, currency: str, invoice: Any) -> str | None:
    """Why a succeeded PaymentIntent cannot be applied to the invoice its metadata names
    (None: it can): `invoice` is the locked row (or None when not found)."""
    if invoice is None:
        return "unknown invoice" if metadata.get("invoice_id") else "no invoice in the metadata"
    if invoice.currency != currency:
        return f"currency {currency}, the invoice is in {invoice.currency}"
    if invoice.status not in PAYABLE_STATUSES:
        return f"the invoice is {invoice.status}"
    if invoice.amount_due != amount:
        return f"amount {amount}, the invoice has {invoice.amount_due} due"
    return None


def evidence_of(pi_id: str, charge_id: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
    return {"payment_intent": pi_id, "charge": charge_id, "metadata": metadata}


def reference_of(metadata: dict[str, Any]) -> str | None:
    reference = metadata.get("invoice_number") or metadata.get("invoice_id")
    return str(reference)[:500] if reference else None


def _receive(session: Session, settings: Settings, state: StripePaymentState, on: date) -> Payment:
    """Record the payment; allocate it to its invoice when the metadata, currency and amount
    all agree, else leave it unapplied in suspense for reconciliation."""
    assert state.amount is not None and state.currency is not None
    metadata = state.stripe_metadata or {}
    invoice_id = _invoice_from(metadata)
    invoice = payments.lock_invoices(session, [invoice_id]).get(invoice_id) if invoice_id else None
    why = mismatch(metadata, state.amount, state.currency, invoice)
    evidence = evidence_of(state.payment_intent_id, state.charge_id, metadata)
    reference = reference_of(metadata)
    payment = payments.create_payment(
        session,
        {
            "amount": state.amount,
            "currency": state.currency,
            "method": "card",
            "received_on": state.created_on or on,
            "reference": reference,
            "payer_name": state.payer_name,
            "external_id": state.payment_intent_id,
            "policyholder_id": invoice.policyholder_id if why is None and invoice else None,
            "match_evidence": None if why is None else {**evidence, "unmatched": why},
        },
        source="stripe",
        commit=False,
    )
    if why is None and invoice is not None:
        payments.allocate(
            session,
            settings,
            payment.id,
            [(invoice.id, state.amount)],
            reason="match",
            rule="stripe_metadata",
            evidence=evidence,
            on=state.created_on or on,
            commit=False,
        )
    else:
        log.info(
            "stripe payment to suspense",
            extra={"event": "stripe_unmatched", "payment_id": payment.id, "why": why},
        )
    return payment


def _refund_reversed(
    session: Session, settings: Settings, payment: Payment, amount: int, on: date
) -> None:
    """A refund learnt after the dispute reversed the payment: that much of the reversal
    was in fact a refund (the result is the same as refund-then-reverse)."""
    amount = min(amount, payment.amount_reversed)
    if amount <= 0:
        return
    holder = payment.policyholder_id
    post(
        session,
        ledger.PAYMENT_REVERSED,
        on,
        ledger.reversed_payment(
            -amount, payment.currency, ledger.STRIPE_CLEARING, payment.id, holder
        ),
        memo="reclassified as a refund",
    )
    entry = post(
        session,
        ledger.PAYMENT_REFUNDED,
        on,
        ledger.refunded(amount, payment.currency, payment.id, holder),
    )
    session.add(
        Refund(
            payment_id=payment.id,
            amount=amount,
            currency=payment.currency,
            status="paid",
            reason="stripe charge.refunded",
            entry_id=entry.id,
        )
    )
    session.flush()
    payments.bump_payment(session, payment.id, refunded=amount, reversed_amount=-amount)


def _reinstate(
    session: Session,
    settings: Settings,
    state: StripePaymentState,
    original: Payment,
    on: date,
) -> Payment:
    """A won dispute returns the money: a payment of its own, applied where the original was."""
    assert state.dispute_id is not None and state.dispute_amount is not None
    payment = payments.create_payment(
        session,
        {
            "amount": state.dispute_amount,
            "currency": original.currency,
            "method": "card",
            "received_on": on,
            "reference": original.reference,
            "payer_name": original.payer_name,
            "external_id": state.dispute_id,
            "policyholder_id": original.policyholder_id,
        },
        source="stripe",
        commit=False,
    )
    invoice_ids = sorted(
        set(
            session.scalars(
                select(Allocation.invoice_id).where(
                    Allocation.payment_id == original.id, Allocation.reason == "match"
                )
            )
        )
    )
    if invoice_ids:
        invoice = payments.lock_invoices(session, invoice_ids[:1])[invoice_ids[0]]
        amount = min(invoice.amount_due, payment.amount)
        if invoice.status in PAYABLE_STATUSES and amount > 0:
            payments.allocate(
                session,
                settings,
                payment.id,
                [(invoice.id, amount)],
                reason="match",
                rule="stripe_dispute_won",
                evidence={"dispute": state.dispute_id, "payment_intent": state.payment_intent_id},
                on=on,
                commit=False,
            )
    return payment


def settle(session: Session, settings: Settings, state: StripePaymentState) -> Settled:
    """Bring the postings of one PaymentIntent to what its facts imply. Not committed."""
    result = Settled(payment_id=state.payment_id)
    if not state.succeeded or state.amount is None or state.currency is None:
        return result  # nothing to post until we know the money arrived
    on = business_date(settings.timezone)
    if state.payment_id is None:
        existing = session.scalar(
            select(Payment).where(
                Payment.source == "stripe", Payment.external_id == state.payment_intent_id
            )
        )
        payment = existing or _receive(session, settings, state, on)
        state.payment_id = payment.id
        result.posted = existing is None
        session.flush()
    payment = payments.get_fresh(session, state.payment_id)
    result.payment_id = payment.id
    target_refunded = min(state.amount_refunded, payment.amount)
    delta = target_refunded - payment.amount_refunded
    if delta > 0:
        if payment.status == "reversed":
            _refund_reversed(session, settings, payment, delta, on)
        else:
            payments.refund(
                session, settings, payment.id, delta, reason="stripe charge.refunded",
                on=on, commit=False,
            )  # fmt: skip
            session.execute(
                update(Refund)
                .where(Refund.payment_id == payment.id, Refund.status == "pending",
                       Refund.reason == "stripe charge.refunded")
                .values(status="paid")
            )  # fmt: skip
        payment = payments.get_fresh(session, payment.id)
    held = payment.amount - payment.amount_refunded
    if state.dispute_id is not None and payment.status != "reversed" and held > 0:
        payments.reverse(
            session, settings, payment.id, on=on, reason=f"dispute {state.dispute_id}",
            commit=False,
        )  # fmt: skip
    if (
        state.dispute_status == "won"
        and state.reinstatement_payment_id is None
        and state.dispute_amount
    ):
        reinstated = _reinstate(session, settings, state, payment, on)
        state.reinstatement_payment_id = reinstated.id
        session.flush()
    return result


def open_invoice_policy(session: Session, invoice_id: int) -> Policy | None:
    invoice = session.get(Invoice, invoice_id)
    return None if invoice is None else session.get(Policy, invoice.policy_id)
