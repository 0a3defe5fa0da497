"""The Stripe adapter: the only module of the service that imports `stripe`.

Outgoing calls go through `StripeGateway`, a thin wrapper around `stripe.StripeClient`
(no global `stripe.api_key`, a pinned API version, our own timeout and retry count).
Every POST takes the caller's idempotency key: the caller stores the key before the call
and sends the same key again when it retries, so Stripe (or the fake) replays the first
result instead of doing the work twice. The library's own network retries reuse the key.

Results are small frozen dataclasses and errors are our own classes, so nothing outside
this module ever sees a stripe object or a stripe exception.

Incoming webhooks are checked by `verify_webhook`, Stripe's scheme exactly:
`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`,
any `v1` matching any of the configured secrets (rotation), within a tolerance.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import stripe

# No telemetry id file or client telemetry header: nothing leaves but the API calls.
stripe.enable_telemetry = False

# The API version every request is pinned to (sent as the `Stripe-Version` header).
# It is the version stripe-python 16.1.0 was generated against; change it only together
# with the library and after reading Stripe's upgrade notes.
STRIPE_API_VERSION = "2026-10-28.endive"

DEFAULT_WEBHOOK_TOLERANCE = 300


# --------------------------------------------------------------------------- errors


class GatewayError(Exception):
    """A call to Stripe failed. Carries what Stripe said, never a stripe object."""

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.code = code
        self.param = param
        self.error_type = error_type
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.append(f"code={self.code}")
        if self.param:
            parts.append(f"param={self.param}")
        if self.http_status:
            parts.append(f"status={self.http_status}")
        return " ".join(parts)


class GatewayUnavailable(GatewayError):
    """Stripe could not be reached or kept failing (connection error, timeout, 5xx, 409
    lock conflicts, 429) after the client's retries. Safe to retry later with the SAME
    idempotency key."""


class GatewayRequestError(GatewayError):
    """Stripe refused the request (4xx): bad parameters, unknown object, bad API key."""


class CardDeclined(GatewayRequestError):
    """A card error (402) that could not be turned into a payment result."""

    def __init__(
        self,
        message: str,
        *,
        decline_code: str | None = None,
        payment_intent_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.decline_code = decline_code
        self.payment_intent_id = payment_intent_id


class IdempotencyConflict(GatewayRequestError):
    """The idempotency key was already used with different parameters (a caller bug)."""


class WebhookSignatureError(Exception):
    """The webhook is not provably from Stripe. `reason` says why (for logs and tests):
    missing_header, malformed_header, no_signatures, signature_mismatch,
    timestamp_outside_tolerance, invalid_payload."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str


@dataclass(frozen=True)
class PaymentIntentResult:
    id: str
    status: str
    failure_code: str | None = None
    failure_message: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str
    amount: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    failure_reason: str | None = None
    payment_intent: str | None = None
    charge: str | None = None


@dataclass(frozen=True)
class BalanceTransaction:
    id: str
    type: str
    amount: int
    fee: int
    net: int
    source: str | None


# --------------------------------------------------------------------------- gateway


def _field(obj: Any, name: str) -> Any:
    """A field of a stripe object, None when absent (StripeObject is not a dict in v16)."""
    if obj is None:
        return None
    return getattr(obj, name, None)


def _error_fields(exc: stripe.StripeError) -> dict[str, Any]:
    err = exc.error
    return {
        "http_status": exc.http_status,
        "code": exc.code or (_field(err, "code") if err is not None else None),
        "param": getattr(exc, "param", None) or (_field(err, "param") if err is not None else None),
        "error_type": _field(err, "type") if err is not None else None,
        "request_id": exc.request_id,
    }


def _message(exc: stripe.StripeError) -> str:
    return exc.user_message or exc.__class__.__name__


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Turn stripe exceptions into ours (the stripe one stays as __cause__)."""
    try:
        yield
    except stripe.APIConnectionError as exc:  # timeouts, refused connections, resets
        raise GatewayUnavailable(_message(exc), **_error_fields(exc)) from exc
    except stripe.CardError as exc:
        err = exc.error
        pi = _field(err, "payment_intent") if err is not None else None
        raise CardDeclined(
            _message(exc),
            decline_code=(_field(err, "decline_code") if err is not None else None) or exc.code,
            payment_intent_id=_id_of(pi),
            **_error_fields(exc),
        ) from exc
    except stripe.IdempotencyError as exc:
        raise IdempotencyConflict(_message(exc), **_error_fields(exc)) from exc
    except stripe.RateLimitError as exc:
        raise GatewayUnavailable(_message(exc), **_error_fields(exc)) from exc
    except (
        stripe.InvalidRequestError,
        stripe.AuthenticationError,
        stripe.PermissionError,
    ) as exc:
        raise GatewayRequestError(_message(exc), **_error_fields(exc)) from exc
    except stripe.APIError as exc:
        status = exc.http_status
        if status is None or status >= 500 or status == 409:
            raise GatewayUnavailable(_message(exc), **_error_fields(exc)) from exc
        if 400 <= status < 500:
            raise GatewayRequestError(_message(exc), **_error_fields(exc)) from exc
        raise GatewayError(_message(exc), **_error_fields(exc)) from exc
    except stripe.StripeError as exc:
        raise GatewayError(_message(exc), **_error_fields(exc)) from exc


def _require_key(idempotency_key: str) -> dict[str, Any]:
    # Without a key stripe-python makes up a random one per call, which would defeat the
    # caller's stored-key retries; so an empty key is a programming error here.
    if not isinstance(idempotency_key, str) or not idempotency_key.strip():
        raise ValueError("idempotency_key is required for every POST to Stripe")
    return {"idempotency_key": idempotency_key}


def _id_of(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return getattr(value, "id", None)


class StripeGateway:
    """Outgoing calls to Stripe (or to the fake Stripe, via `api_base`)."""

    def __init__(
        self,
        secret_key: str,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = 10,
    ) -> None:
        if not secret_key:
            raise ValueError("a Stripe secret key is required")
        base_addresses: dict[str, str] | None = None
        if api_base:  # None or "" means Stripe itself
            base_addresses = {"api": api_base.rstrip("/")}
        self._http_client = stripe.RequestsClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            secret_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses=base_addresses,  # type: ignore[arg-type]
            max_network_retries=max_network_retries,
            http_client=self._http_client,
        )

    # -- lifecycle
    def close(self) -> None:
        """Close the HTTP session of the calling thread."""
        self._http_client.close()  # type: ignore[no-untyped-call]

    def __enter__(self) -> StripeGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- customers
    def create_customer(
        self,
        *,
        email: str | None,
        name: str | None,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> str:
        options = _require_key(idempotency_key)
        params: dict[str, Any] = {"metadata": dict(metadata)}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        with _translated_errors():
            customer = self._client.v1.customers.create(params, options)  # type: ignore[arg-type]
        return str(customer.id)

    # -- Checkout
    def create_checkout_session(
        self,
        *,
        amount: int,
        currency: str,
        description: str,
        metadata: Mapping[str, str],
        client_reference_id: str | None,
        success_url: str,
        cancel_url: str,
        customer: str | None,
        idempotency_key: str,
    ) -> CheckoutSession:
        options = _require_key(idempotency_key)
        params: dict[str, Any] = {
            "mode": "payment",
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": amount,
                        "product_data": {"name": description},
                    },
                }
            ],
            "metadata": dict(metadata),
            "payment_intent_data": {"metadata": dict(metadata), "description": description},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        if client_reference_id:
            params["client_reference_id"] = client_reference_id
        if customer:
            params["customer"] = customer
        with _translated_errors():
            session = self._client.v1.checkout.sessions.create(params, options)  # type: ignore[arg-type]
        return CheckoutSession(id=str(session.id), url=str(session.url))

    def create_setup_session(
        self,
        *,
        customer: str,
        success_url: str,
        cancel_url: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> CheckoutSession:
        options = _require_key(idempotency_key)
        params: dict[str, Any] = {
            "mode": "setup",
            "customer": customer,
            # Explicit card: setup mode otherwise requires `currency` (dynamic methods).
            "payment_method_types": ["card"],
            "metadata": dict(metadata),
            "setup_intent_data": {"metadata": dict(metadata)},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        with _translated_errors():
            session = self._client.v1.checkout.sessions.create(params, options)  # type: ignore[arg-type]
        return CheckoutSession(id=str(session.id), url=str(session.url))

    # -- autopay
    def charge_off_session(
        self,
        *,
        amount: int,
        currency: str,
        customer: str,
        payment_method: str,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> PaymentIntentResult:
        """Charge a saved card without the customer present.

        A decline is a result, not an exception: Stripe answers 402 with the (failed)
        PaymentIntent inside the error; we return its id, status
        (`requires_payment_method`) and the decline code."""
        options = _require_key(idempotency_key)
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "customer": customer,
            "payment_method": payment_method,
            "payment_method_types": ["card"],
            "confirm": True,
            "off_session": True,
            "metadata": dict(metadata),
        }
        try:
            with _translated_errors():
                pi = self._client.v1.payment_intents.create(params, options)  # type: ignore[arg-type]
        except CardDeclined as exc:
            cause = exc.__cause__
            err = cause.error if isinstance(cause, stripe.StripeError) else None
            failed_pi = _field(err, "payment_intent") if err is not None else None
            if failed_pi is None:
                raise
            return PaymentIntentResult(
                id=str(failed_pi.id),
                status=str(failed_pi.status),
                failure_code=exc.decline_code or exc.code,
                failure_message=exc.message,
            )
        last_error = _field(pi, "last_payment_error")
        return PaymentIntentResult(
            id=str(pi.id),
            status=str(pi.status),
            failure_code=(
                (_field(last_error, "decline_code") or _field(last_error, "code"))
                if last_error
                else None
            ),
            failure_message=_field(last_error, "message") if last_error else None,
        )

    # -- refunds
    def refund(
        self,
        *,
        payment_intent: str,
        amount: int,
        metadata: Mapping[str, str],
        idempotency_key: str,
    ) -> RefundResult:
        options = _require_key(idempotency_key)
        params: dict[str, Any] = {
            "payment_intent": payment_intent,
            "amount": amount,
            "metadata": dict(metadata),
        }
        with _translated_errors():
            refund = self._client.v1.refunds.create(params, options)  # type: ignore[arg-type]
        return _refund_result(refund)

    def list_refunds(
        self, *, charge: str | None = None, payment_intent: str | None = None
    ) -> list[RefundResult]:
        """Every refund of a charge or a PaymentIntent (all pages), newest first."""
        params: dict[str, Any] = {"limit": 100}
        if charge:
            params["charge"] = charge
        if payment_intent:
            params["payment_intent"] = payment_intent
        with _translated_errors():
            page = self._client.v1.refunds.list(params)  # type: ignore[arg-type]
            return [_refund_result(refund) for refund in page.auto_paging_iter()]

    # -- payouts
    def payout_balance_transactions(self, payout_id: str) -> list[BalanceTransaction]:
        """Every balance transaction paid out in `payout_id` (all pages). As on Stripe,
        the list also holds the payout's own transaction (type `payout`, negative)."""
        result: list[BalanceTransaction] = []
        with _translated_errors():
            page = self._client.v1.balance_transactions.list({"payout": payout_id, "limit": 100})
            for txn in page.auto_paging_iter():
                result.append(
                    BalanceTransaction(
                        id=str(txn.id),
                        type=str(txn.type),
                        amount=int(txn.amount),
                        fee=int(txn.fee),
                        net=int(txn.net),
                        source=_id_of(_field(txn, "source")),
                    )
                )
        return result


def _refund_result(refund: Any) -> RefundResult:
    metadata = _field(refund, "metadata")
    return RefundResult(
        id=str(refund.id),
        status=str(refund.status),
        amount=int(refund.amount),
        metadata={str(k): str(v) for k, v in (metadata.to_dict() if metadata else {}).items()},
        failure_reason=_field(refund, "failure_reason"),
        payment_intent=_id_of(_field(refund, "payment_intent")),
        charge=_id_of(_field(refund, "charge")),
    )


# --------------------------------------------------------------------------- webhooks


def _signature(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(int(timestamp)).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign_webhook(payload: bytes, secret: str, timestamp: int) -> str:
    """The `Stripe-Signature` header Stripe would send for `payload` at `timestamp`."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    return f"t={int(timestamp)},v1={_signature(payload, secret, timestamp)}"


def verify_webhook(
    payload: bytes,
    sig_header: str | None,
    secrets: list[str],
    tolerance: int = DEFAULT_WEBHOOK_TOLERANCE,
    now: int | None = None,
) -> dict[str, Any]:
    """Check a webhook exactly as Stripe specifies and return the parsed event.

    `payload` must be the raw request body: the signature covers the bytes, so a body
    that was parsed and re-serialised fails. Any `v1` signature may match any of
    `secrets` (secret rotation). The timestamp must be within `tolerance` seconds of
    `now` (Stripe's libraries reject only old ones; we also reject ones from the future).
    A tolerance of 0 disables the time check, as in Stripe's libraries.
    """
    usable = [s for s in secrets if s and s.strip()]
    if not usable:
        raise ValueError("no Stripe webhook secret is configured")
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if not sig_header:
        raise WebhookSignatureError("no Stripe-Signature header", "missing_header")

    timestamp: int | None = None
    signatures: list[str] = []
    for item in sig_header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t" and timestamp is None:
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookSignatureError(
                    "Stripe-Signature timestamp is not an integer", "malformed_header"
                ) from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None:
        raise WebhookSignatureError("Stripe-Signature has no timestamp", "malformed_header")
    if not signatures:
        raise WebhookSignatureError("Stripe-Signature has no v1 signature", "no_signatures")

    candidates = [s.encode("utf-8", "backslashreplace") for s in signatures]
    matched = False
    for secret in usable:
        expected = _signature(payload, secret, timestamp).encode("ascii")
        # compare against every signature, no early exit on the first mismatch
        for candidate in candidates:
            if hmac.compare_digest(expected, candidate):
                matched = True
    if not matched:
        raise WebhookSignatureError(
            "no signature matches the payload for any configured secret", "signature_mismatch"
        )

    current = int(time.time()) if now is None else int(now)
    if tolerance and abs(current - timestamp) > tolerance:
        raise WebhookSignatureError(
            f"timestamp {timestamp} is outside the tolerance of {tolerance} s",
            "timestamp_outside_tolerance",
        )

    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookSignatureError("payload is not JSON", "invalid_payload") from None
    if not isinstance(event, dict):
        raise WebhookSignatureError("payload is not a JSON object", "invalid_payload")
    return event
