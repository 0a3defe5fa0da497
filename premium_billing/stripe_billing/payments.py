"""Stripe money in: Checkout for an invoice, setup-mode Checkout for autopay, and the posting
of what Stripe reports (succeeded, refunded, disputed) whatever order the events come in.

Facts about a PaymentIntent are merged into one `StripePaymentState` row (they only grow:
refunded amounts are cumulative, a closed dispute outranks an open one), then `settle`
brings the postings to what those facts imply, always in the same order (receive and
allocate → refund → reverse for a dispute → reinstate if won). So every order of events
ends in the same payments, allocations and invoice amounts.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from premium_billing.clock import business_date, business_date_of
from premium_billing.config import Settings
from premium_billing.db.types import utcnow
from premium_billing.errors import Conflict, NotFound
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import is_payable
from premium_billing.payments import posting as payments
from premium_billing.payments.allocation_order import (
    Policies,
    named_evidence,
    policies_of,
    same_allocations,
)
from premium_billing.payments.models import Allocation, Payment
from premium_billing.payments.rules import (
    Installment,
    Tolerance,
    allocation_order,
    tolerance_write_offs,
)
from premium_billing.policies.models import Policy, Policyholder
from premium_billing.stripe_billing import rules as stripe_rules
from premium_billing.stripe_billing.gateway import (
    CheckoutSession,
    GatewayUnavailable,
    StripeGateway,
)
from premium_billing.stripe_billing.models import StripeCustomer, StripePaymentState, StripeRequest
from premium_billing.stripe_billing.rules import (
    CLOSED_DISPUTE,
    InvoiceSeen,
    dispute_flag,
    evidence_of,
    format_id,
    invoice_named,
    mismatch,
    reference_of,
)

log = logging.getLogger(__name__)

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


def start_checkout(
    session: Session,
    settings: Settings,
    invoice_id: int,
    *,
    success_url: str | None = None,
    cancel_url: str | None = None,
) -> CheckoutSession:
    """A Checkout Session for the invoice's amount due. Paid, void or written-off: Conflict.
    Stripe returns the payer to `success_url` / `cancel_url` (default: the settings')."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise NotFound("invoice not found")
    if not is_payable(invoice.status) or invoice.amount_due <= 0:
        raise Conflict(f"the invoice is {invoice.status}; there is nothing to pay")
    target = format_id("invoice", invoice.id) or ""
    return _checkout(
        session,
        settings,
        Checkout(
            purpose="checkout",
            target=target,
            holder=invoice.policyholder_id,
            amount=invoice.amount_due,
            currency=invoice.currency,
            description=f"Invoice {invoice.number}",
            metadata=invoice_metadata(invoice),
            client_reference_id=target,
        ),
        success_url=success_url,
        cancel_url=cancel_url,
    )


@dataclass(frozen=True)
class Checkout:
    """A payment-mode Checkout Session to make: one stored request per `purpose` and
    `target` (its idempotency key), reused while valid for the same amount."""

    purpose: str
    target: str
    holder: int
    amount: int
    currency: str
    description: str
    metadata: dict[str, str]
    client_reference_id: str | None


def _checkout(
    session: Session,
    settings: Settings,
    checkout: Checkout,
    *,
    success_url: str | None,
    cancel_url: str | None,
) -> CheckoutSession:
    """The Checkout Session: the one made for the same purpose, target and amount in the
    last SESSION_REUSE, or a new one (the request's key stored before the call)."""
    reusable = session.scalar(
        select(StripeRequest)
        .where(
            StripeRequest.purpose == checkout.purpose,
            StripeRequest.target == checkout.target,
            StripeRequest.amount == checkout.amount,
            StripeRequest.status == "succeeded",
            StripeRequest.created_at > utcnow() - SESSION_REUSE,
        )
        .order_by(StripeRequest.id.desc())
        .limit(1)
    )
    if reusable is not None and reusable.result_id and reusable.result_url:
        return CheckoutSession(id=reusable.result_id, url=reusable.result_url)
    customer = session.scalar(
        select(StripeCustomer.customer_id).where(StripeCustomer.policyholder_id == checkout.holder)
    )
    request = _stored_request(session, checkout.purpose, checkout.target, checkout.amount)
    try:
        result = gateway(settings).create_checkout_session(
            amount=checkout.amount,
            currency=checkout.currency,
            description=checkout.description,
            metadata=checkout.metadata,
            client_reference_id=checkout.client_reference_id,
            success_url=success_url or settings.checkout_success_url,
            cancel_url=cancel_url or settings.checkout_cancel_url,
            customer=customer,
            idempotency_key=request.idempotency_key,
        )
    except Exception as error:
        _fail_request(session, request, error)
        raise
    _finish_request(session, request, result.id, result.url)
    return result


def start_checkout_many(
    session: Session,
    settings: Settings,
    invoice_ids: Sequence[int],
    *,
    success_url: str | None = None,
    cancel_url: str | None = None,
) -> tuple[CheckoutSession, int]:
    """One Checkout Session for what several invoices of one policyholder in one currency
    have due together (Pay everything overdue), and that amount. Its metadata names every
    invoice (`rules.invoice_list`), so its payment pays each what it has due
    (`post_succeeded`). An invoice not payable, or several policyholders or currencies:
    Conflict. The same session is offered again while valid for the same invoices and sum."""
    ids = sorted(set(invoice_ids))
    if not ids:
        raise Conflict("there is nothing to pay")
    invoices = list(session.scalars(select(Invoice).where(Invoice.id.in_(ids))))
    if len(invoices) != len(ids):
        raise NotFound("invoice not found")
    for invoice in invoices:
        if not is_payable(invoice.status) or invoice.amount_due <= 0:
            raise Conflict(f"invoice {invoice.number} is {invoice.status}; nothing to pay")
    holders = {i.policyholder_id for i in invoices}
    currencies = {i.currency for i in invoices}
    if len(holders) != 1 or len(currencies) != 1:
        raise Conflict("one checkout pays the invoices of one policyholder in one currency")
    invoices.sort(key=lambda i: (i.due_date, i.id))
    amount = sum(i.amount_due for i in invoices)
    holder, currency = holders.pop(), currencies.pop()
    listed = stripe_rules.invoice_list([i.id for i in invoices])
    digest = hashlib.sha256(listed.encode()).hexdigest()[:16]
    target = f"{format_id('policyholder', holder)}:{digest}"  # the same invoices: reused
    metadata = {
        stripe_rules.INVOICE_LIST_KEY: listed,
        "invoice_numbers": ",".join(i.number for i in invoices)[:500],
        "policyholder_id": format_id("policyholder", holder) or "",
    }
    several = len(invoices) > 1
    result = _checkout(
        session,
        settings,
        Checkout(
            purpose="checkout_many",
            target=target,
            holder=holder,
            amount=amount,
            currency=currency,
            description=f"{len(invoices)} overdue invoices"
            if several
            else f"Invoice {invoices[0].number}",
            metadata=metadata,
            client_reference_id=None,  # no single invoice: the metadata names them
        ),
        success_url=success_url,
        cancel_url=cancel_url,
    )
    return result, amount


def start_autopay_setup(
    session: Session,
    settings: Settings,
    policyholder_id: int,
    *,
    success_url: str | None = None,
    cancel_url: str | None = None,
) -> CheckoutSession:
    """A setup-mode Checkout Session that saves a card for off-session autopay charges."""
    customer = ensure_customer(session, settings, policyholder_id)
    target = format_id("policyholder", policyholder_id) or ""
    request = _stored_request(session, "setup", target, None)
    try:
        result = gateway(settings).create_setup_session(
            customer=customer.customer_id,
            success_url=success_url or settings.checkout_success_url,
            cancel_url=cancel_url or settings.checkout_cancel_url,
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
    dispute_withdrawn: bool = False  # `rules.dispute_money`
    dispute_reinstated: bool = False
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
    if facts.amount and state.amount == 0:
        state.amount = facts.amount  # an authorization (0 moved) captured since
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
        state.dispute_funds_withdrawn = state.dispute_funds_withdrawn or facts.dispute_withdrawn
        state.dispute_funds_reinstated = state.dispute_funds_reinstated or facts.dispute_reinstated
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


@dataclass(frozen=True)
class Succeeded:
    """A succeeded PaymentIntent to post, as both roads know it (the inline webhook from its
    merged state, the drain from the event)."""

    payment_intent_id: str
    charge_id: str | None
    amount: int
    currency: str
    metadata: dict[str, Any]
    received_on: date
    payer_name: str | None = None


def post_succeeded(
    session: Session, settings: Settings, items: Sequence[Succeeded], *, memo: str | None = None
) -> list[tuple[int, str | None]]:
    """Receive the payments of succeeded PaymentIntents and apply each to the invoice its
    metadata names when `rules.mismatch` finds nothing wrong (else it waits unapplied in
    suspense, the reason in its evidence), set-based through the posting engine: the named
    invoices (and every invoice of their policies with something due) locked, one `receive`,
    one `post`. The inline webhook posts a batch of one, the drain a batch of many: the same
    code, each item decided on what the items before it leave.

    In allocation order "oldest_first" (ALLOCATION_ORDER, `payments.rules.allocation_order`)
    the money settles the oldest open installments of the named invoice's policy first, the
    named invoice kept in the evidence (`named_invoices`); `mismatch` then checks the amount
    against that policy. Returns [(payment id, mismatch or None)], in order. Flushed, not
    committed."""
    order = settings.allocation_order
    named = [invoice_named(item.metadata) for item in items]
    several = [stripe_rules.invoices_named(item.metadata) for item in items]
    wanted = {i for i in named if i is not None} | {i for ids in several for i in ids or ()}
    policies = policies_of(session, wanted) if order != "as_named" else Policies({}, {})
    seen = payments.lock_invoices(session, settings, wanted | policies.ids())
    # What each invoice has due as the items before have left it (`post` then posts the
    # same allocations and tolerance write-offs against the locked rows).
    due = {i: inv.due if is_payable(inv.status) else 0 for i, inv in seen.items()}
    tolerance = Tolerance(settings.writeoff_tolerance_abs, settings.writeoff_tolerance_pct)
    received: list[payments.Received] = []
    reasons: list[str | None] = []
    allocations: list[tuple[list[tuple[int, int]], dict[str, Any]]] = []  # and evidence
    for item, invoice_id, invoice_ids in zip(items, named, several, strict=True):
        if invoice_ids is not None:  # Pay everything overdue: each invoice named its due
            decided = _several(item, invoice_ids, seen, due, policies, order)
            reasons.append(decided.why)
            allocations.append((decided.ordered, decided.evidence))
            received.append(decided.received)
            continue
        inv = seen.get(invoice_id) if invoice_id is not None else None
        installments: list[Installment] = []
        policy_due = None
        if inv is not None and order != "as_named":
            installments = policies.installments([inv.id], lambda i: due.get(i, 0))
            policy_due = sum(i.amount_due for i in installments)
        why = mismatch(
            item.metadata,
            item.amount,
            item.currency,
            None if inv is None else InvoiceSeen(inv.currency, inv.status, due[inv.id], inv.total),
            policy_due,
        )
        evidence = evidence_of(item.payment_intent_id, item.charge_id, item.metadata)
        ordered: list[tuple[int, int]] = []
        if why is None and inv is not None:
            requested = [(inv.id, item.amount)]
            ordered = allocation_order(requested, installments, order)
            for i, amount in ordered:
                due[i] -= amount
            left = {i: (due[i], seen[i].total) for i, _ in ordered}
            for i, _ in tolerance_write_offs(0, left, tolerance):
                due[i] = 0
            if not same_allocations(ordered, requested):
                evidence = named_evidence(evidence, requested)
        reasons.append(why)
        allocations.append((ordered, evidence))
        received.append(
            payments.Received(
                amount=item.amount,
                currency=item.currency,
                method="card",
                received_on=item.received_on,
                external_id=item.payment_intent_id,
                payer_name=item.payer_name,
                reference=reference_of(item.metadata),
                policyholder_id=inv.holder if why is None and inv is not None else None,
                match_evidence=None if why is None else {**evidence, "unmatched": why},
            )
        )
    ids = payments.receive(session, received, source="stripe", memo=memo)
    plans = [
        payments.Plan(pid, ordered, rule="stripe_metadata", evidence=evidence, on=item.received_on)
        for item, pid, (ordered, evidence) in zip(items, ids, allocations, strict=True)
        if ordered
    ]
    refused = payments.post(
        session, settings, plans, on=business_date(settings.timezone), memo=memo
    )
    if refused:  # cannot happen with the invoices locked: fail rather than guess
        raise RuntimeError(f"stripe match refused: {sorted(refused.values())[:3]}")
    for pid, why in zip(ids, reasons, strict=True):
        if why is not None:
            log.info(
                "stripe payment to suspense",
                extra={"event": "stripe_unmatched", "payment_id": pid, "why": why},
            )
    return list(zip(ids, reasons, strict=True))


@dataclass(frozen=True)
class _Decided:
    why: str | None
    ordered: list[tuple[int, int]]
    evidence: dict[str, Any]
    received: payments.Received


def _several(
    item: Succeeded,
    invoice_ids: list[int],
    seen: dict[int, payments.InvoiceState],
    due: dict[int, int],
    policies: Policies,
    order: str,
) -> _Decided:
    """A payment naming several invoices (`rules.invoices_named`: Pay everything overdue):
    when `rules.mismatch_many` finds nothing wrong, each invoice gets what it has due, in
    allocation order within each policy (`due` is updated for the items after it)."""
    invs = [seen.get(i) for i in invoice_ids]
    why = stripe_rules.mismatch_many(
        item.metadata,
        item.amount,
        item.currency,
        [None if inv is None else InvoiceSeen(inv.currency, inv.status, due[inv.id], inv.total)
         for inv in invs],
    )  # fmt: skip
    evidence = evidence_of(item.payment_intent_id, item.charge_id, item.metadata)
    ordered: list[tuple[int, int]] = []
    holder = None
    if why is None:
        requested = [(i, due[i]) for i in invoice_ids]
        installments = policies.installments(invoice_ids, lambda i: due.get(i, 0))
        ordered = allocation_order(requested, installments, order)
        for i, amount in ordered:
            due[i] -= amount
        if not same_allocations(ordered, requested):
            evidence = named_evidence(evidence, requested)
        holders = {inv.holder for inv in invs if inv is not None}
        holder = holders.pop() if len(holders) == 1 else None
    received = payments.Received(
        amount=item.amount,
        currency=item.currency,
        method="card",
        received_on=item.received_on,
        external_id=item.payment_intent_id,
        payer_name=item.payer_name,
        reference=reference_of(item.metadata),
        policyholder_id=holder,
        match_evidence=None if why is None else {**evidence, "unmatched": why},
    )
    return _Decided(why, ordered, evidence, received)


def _receive(session: Session, settings: Settings, state: StripePaymentState, on: date) -> int:
    """Record the payment of a PaymentIntent (`post_succeeded`, a batch of one)."""
    assert state.amount is not None and state.currency is not None
    ((payment_id, _),) = post_succeeded(
        session,
        settings,
        [
            Succeeded(
                payment_intent_id=state.payment_intent_id,
                charge_id=state.charge_id,
                amount=state.amount,
                currency=state.currency,
                metadata=dict(state.stripe_metadata or {}),
                received_on=state.created_on or on,
                payer_name=state.payer_name,
            )
        ],
    )
    return payment_id


def _reinstate(
    session: Session,
    settings: Settings,
    state: StripePaymentState,
    original: Payment,
    amount: int,
    on: date,
) -> Payment:
    """Disputed funds given back (`amount`, minor units): a payment of its own (external id:
    the dispute), applied where the original was."""
    assert state.dispute_id is not None
    payment = payments.create_payment(
        session,
        {
            "amount": amount,
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
        invoice = payments.lock_invoices(session, settings, invoice_ids[:1])[invoice_ids[0]]
        amount = min(invoice.due, payment.amount)
        if is_payable(invoice.status) and amount > 0:
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
    if not state.succeeded or not state.amount or state.currency is None:
        return result  # nothing to post until money arrived (0 moved: an authorization)
    on = business_date(settings.timezone)
    if state.payment_id is None:
        existing = session.scalar(
            select(Payment).where(
                Payment.source == "stripe", Payment.external_id == state.payment_intent_id
            )
        )
        state.payment_id = existing.id if existing else _receive(session, settings, state, on)
        result.posted = existing is None
        session.flush()
    payment = payments.get_fresh(session, state.payment_id)
    result.payment_id = payment.id
    target_refunded = min(state.amount_refunded, payment.amount)
    delta = target_refunded - payment.amount_refunded
    if delta > 0:
        if payment.status == "reversed":
            payments.refund_reversed(
                session, settings, payment.id, delta, on=on, reason="stripe charge.refunded",
                status="succeeded",
            )  # fmt: skip
        else:
            payments.refund(
                session, settings, payment.id, delta, reason="stripe charge.refunded",
                on=on, commit=False, status="succeeded",
            )  # fmt: skip
        payment = payments.get_fresh(session, payment.id)
    if state.dispute_id is None:
        return result
    _flag_dispute(state, payment, on)
    # Only money Stripe took is reversed: an inquiry (warning_*) changes nothing.
    held = payment.amount - payment.amount_refunded
    if state.dispute_funds_withdrawn and payment.status != "reversed" and held > 0:
        payment = payments.reverse(
            session, settings, payment.id, on=on, reason=f"dispute {state.dispute_id}",
            commit=False,
        )  # fmt: skip
    # What Stripe gave back (won, funds_reinstated; warning_closed: what a reversal of an
    # inquiry took) comes back once, at most what was reversed.
    if (
        state.dispute_funds_reinstated
        and state.reinstatement_payment_id is None
        and payment.status == "reversed"
        and payment.amount_reversed > 0
    ):
        amount = min(state.dispute_amount or payment.amount_reversed, payment.amount_reversed)
        reinstated = _reinstate(session, settings, state, payment, amount, on)
        state.reinstatement_payment_id = reinstated.id
        session.flush()
    return result


def _flag_dispute(state: StripePaymentState, payment: Payment, on: date) -> None:
    """A dispute larger than its payment is stored, logged and listed for finance (the
    day's reconciliation report, `disputes_flagged`), once."""
    if state.dispute_flag is not None or state.dispute_amount is None:
        return
    assert state.dispute_id is not None
    flag = dispute_flag(state.dispute_id, state.dispute_amount, payment.amount, payment.currency)
    if flag is None:
        return
    state.dispute_flag = flag
    state.dispute_flagged_on = on
    log.warning(
        "stripe dispute larger than its payment",
        extra={"event": "dispute_flagged", "payment_id": payment.id,
               "dispute_id": state.dispute_id, "amount": state.dispute_amount},
    )  # fmt: skip


def open_invoice_policy(session: Session, invoice_id: int) -> Policy | None:
    invoice = session.get(Invoice, invoice_id)
    return None if invoice is None else session.get(Policy, invoice.policy_id)
