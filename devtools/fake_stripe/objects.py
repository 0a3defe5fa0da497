"""The Stripe objects, shaped as Stripe shapes them: customers, checkout sessions, payment
methods, payment intents, charges, setup intents, refunds, disputes, payouts, balance
transactions and events.

Plain functions from values to the JSON-ready dicts the API answers with; which objects
exist, and how they change, is the business of the resources (`resources.py`,
`checkout_sessions.py`)."""

from __future__ import annotations

import secrets
import string
import time
from typing import Any

from .cards import Decline
from .upstream import STRIPE_API_VERSION

_ALNUM = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def now() -> int:
    return int(time.time())


def customer(
    *,
    email: str | None,
    name: str | None,
    phone: str | None,
    description: str | None,
    metadata: dict[str, str],
) -> dict[str, Any]:
    return {
        "id": new_id("cus_", 14),
        "object": "customer",
        "created": now(),
        "email": email,
        "name": name,
        "phone": phone,
        "description": description,
        "metadata": metadata,
        "livemode": False,
        "invoice_settings": {"default_payment_method": None},
    }


def checkout_session(
    *,
    session_id: str,
    url: str,
    mode: str,
    total: int,
    currency: str | None,
    customer: str | None,
    customer_email: str | None,
    client_reference_id: str | None,
    metadata: dict[str, str],
    success_url: str,
    cancel_url: str | None,
) -> dict[str, Any]:
    created = now()
    return {
        "id": session_id,
        "object": "checkout.session",
        "amount_subtotal": total if mode == "payment" else None,
        "amount_total": total if mode == "payment" else None,
        "cancel_url": cancel_url,
        "client_reference_id": client_reference_id,
        "created": created,
        "currency": currency,
        "customer": customer,
        "customer_details": None,
        "customer_email": customer_email,
        "expires_at": created + 24 * 3600,
        "livemode": False,
        "metadata": metadata,
        "mode": mode,
        "payment_intent": None,
        "payment_method_types": ["card"],
        "payment_status": "unpaid" if mode == "payment" else "no_payment_required",
        "setup_intent": None,
        "status": "open",
        "success_url": success_url,
        "url": url,
    }


def payment_method(
    card: str, customer: str | None, billing: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "id": new_id("pm_"),
        "object": "payment_method",
        "type": "card",
        "card": {
            "brand": "visa" if card.startswith("4") else "mastercard",
            "last4": card[-4:],
            "exp_month": 12,
            "exp_year": time.gmtime().tm_year + 3,
            "funding": "credit",
            "country": "US",
        },
        "billing_details": billing or {"email": None, "name": None},
        "customer": customer,
        "created": now(),
        "livemode": False,
        "metadata": {},
    }


def payment_intent(
    *,
    amount: int,
    currency: str,
    customer: str | None,
    metadata: dict[str, str],
    description: str | None,
    status: str,
) -> dict[str, Any]:
    return {
        "id": new_id("pi_"),
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "capture_method": "automatic",
        "client_secret": None,
        "confirmation_method": "automatic",
        "created": now(),
        "currency": currency,
        "customer": customer,
        "description": description,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": metadata,
        "payment_method": None,
        "payment_method_types": ["card"],
        "status": status,
    }


def error_doc_url(code: str) -> str:
    return f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"


def charge(
    *,
    charge_id: str,
    payment_intent: dict[str, Any],
    payment_method: dict[str, Any],
    balance_transaction: str | None,
    decline: Decline | None,
) -> dict[str, Any]:
    pi, pm = payment_intent, payment_method
    amount = pi["amount"]
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if decline is None else 0,
        "amount_refunded": 0,
        "balance_transaction": balance_transaction,
        "billing_details": pm.get("billing_details"),
        "captured": decline is None,
        "created": now(),
        "currency": pi["currency"],
        "customer": pi.get("customer"),
        "description": pi.get("description"),
        "disputed": False,
        "failure_code": decline.code if decline else None,
        "failure_message": decline.message if decline else None,
        "livemode": False,
        "metadata": dict(pi.get("metadata") or {}),
        "outcome": {
            "network_status": "approved_by_network" if decline is None else "declined_by_network",
            "reason": decline.decline_code if decline else None,
            "type": "authorized" if decline is None else "issuer_declined",
        },
        "paid": decline is None,
        "payment_intent": pi["id"],
        "payment_method": pm["id"],
        "payment_method_details": {"type": "card", "card": dict(pm["card"])},
        "refunded": False,
        "status": "succeeded" if decline is None else "failed",
    }


def last_payment_error(
    decline: Decline, charge_id: str, payment_method: dict[str, Any]
) -> dict[str, Any]:
    """A PaymentIntent's `last_payment_error` after `decline` (`payment_method` copied)."""
    return {
        "type": "card_error",
        "code": decline.code,
        "decline_code": decline.decline_code,
        "message": decline.message,
        "charge": charge_id,
        "payment_method": payment_method,
        "doc_url": error_doc_url(decline.code),
    }


def setup_intent(
    *, customer: str | None, payment_method: str, metadata: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": new_id("seti_"),
        "object": "setup_intent",
        "created": now(),
        "customer": customer,
        "livemode": False,
        "metadata": metadata,
        "payment_method": payment_method,
        "payment_method_types": ["card"],
        "status": "succeeded",
        "usage": "off_session",
    }


def refund(
    *,
    refund_id: str,
    amount: int,
    balance_transaction: str,
    charge: dict[str, Any],
    metadata: dict[str, str],
    reason: str | None,
    status: str = "succeeded",
) -> dict[str, Any]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": balance_transaction,
        "charge": charge["id"],
        "created": now(),
        "currency": charge["currency"],
        "failure_balance_transaction": None,
        "failure_reason": None,
        "metadata": metadata,
        "payment_intent": charge.get("payment_intent"),
        "reason": reason,
        "status": status,
    }


def dispute(
    *,
    dispute_id: str,
    amount: int,
    balance_transaction: dict[str, Any],
    charge: dict[str, Any],
    reason: str,
) -> dict[str, Any]:
    """A new dispute (needs_response); `balance_transaction` is embedded as given."""
    return {
        "id": dispute_id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [balance_transaction],
        "charge": charge["id"],
        "created": now(),
        "currency": charge["currency"],
        "evidence": {},
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "payment_intent": charge.get("payment_intent"),
        "reason": reason,
        "status": "needs_response",
    }


def payout(
    *, payout_id: str, amount: int, balance_transaction: str, currency: str
) -> dict[str, Any]:
    """A standard automatic payout to the account's bank, already paid."""
    paid = now()
    return {
        "id": payout_id,
        "object": "payout",
        "amount": amount,
        "arrival_date": paid,
        "automatic": True,
        "balance_transaction": balance_transaction,
        "created": paid,
        "currency": currency,
        "description": "STRIPE PAYOUT",
        "destination": "ba_fakebankaccount0001",
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "reconciliation_status": "completed",
        "source_type": "card",
        "statement_descriptor": None,
        "status": "paid",
        "type": "bank_account",
    }


def balance_transaction(
    *,
    amount: int,
    fee: int,
    currency: str,
    source: str,
    type: str,
    category: str,
    description: str | None = None,
) -> dict[str, Any]:
    created = now()
    return {
        "id": new_id("txn_"),
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created,
        "created": created,
        "currency": currency,
        "description": description,
        "fee": fee,
        "fee_details": (
            [
                {
                    "amount": fee,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                    "application": None,
                }
            ]
            if fee
            else []
        ),
        "net": amount - fee,
        "reporting_category": category,
        "source": source,
        "status": "available",
        "type": type,
    }


def event(
    event_type: str,
    obj: dict[str, Any],
    *,
    previous: dict[str, Any] | None,
    request: dict[str, Any] | None,
    pending_webhooks: int,
) -> dict[str, Any]:
    """An event about `obj` (embedded as given), made by `request` (id, idempotency_key)."""
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": new_id("evt_"),
        "object": "event",
        "api_version": STRIPE_API_VERSION,
        "created": now(),
        "data": data,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": dict(request) if request else {"id": None, "idempotency_key": None},
        "type": event_type,
    }
