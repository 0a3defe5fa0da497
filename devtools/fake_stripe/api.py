"""Stripe's REST API (`/v1/...`) as the fake serves it: injected faults first (like a failing
load balancer), then Bearer secret-key auth, the idempotency rules, and the routes to the
resources, answered with Stripe's headers (`Request-Id`, `Stripe-Version`) and JSON."""

from __future__ import annotations

import base64
import re
import threading
import urllib.parse
from email.message import Message
from typing import Any

from .account import Account
from .idempotency import IdempotencyKeys
from .objects import new_id
from .params import ApiError, decode_form, error_body
from .resources import Emitted, RequestRef
from .store import snapshot
from .upstream import STRIPE_API_VERSION
from .webhooks import WebhookSender
from .wire import Exchange, RecordedRequest, RequestLog, json_bytes

# `GET /v1/{collection}/{id}` retrieves an object of the type
_COLLECTIONS = {
    "customers": "customer",
    "checkout/sessions": "checkout.session",
    "payment_intents": "payment_intent",
    "charges": "charge",
    "refunds": "refund",
    "payouts": "payout",
    "payment_methods": "payment_method",
    "setup_intents": "setup_intent",
    "disputes": "dispute",
    "events": "event",
    "balance_transactions": "balance_transaction",
}


class Faults:
    """Faults injected into the next API requests: `fail` answers at once and runs nothing,
    `delay` runs and saves the request, then holds the answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail: list[int] = []
        self._delay: list[float] = []

    def fail_next(self, n: int, status: int) -> None:
        with self._lock:
            self._fail.extend([status] * n)

    def delay_next(self, n: int, seconds: float) -> None:
        with self._lock:
            self._delay.extend([seconds] * n)

    def take(self) -> tuple[int | None, float | None]:
        """The fault status and the delay for the next request (None: none)."""
        with self._lock:
            fail = self._fail.pop(0) if self._fail else None
            delay = self._delay.pop(0) if self._delay else None
        return fail, delay


class StripeApi:
    def __init__(
        self,
        account: Account,
        webhooks: WebhookSender,
        log: RequestLog,
        *,
        secret_key: str,
        stopping: threading.Event,
    ) -> None:
        """`stopping`: set when the fake stops (delayed answers are sent then)."""
        self.secret_key = secret_key
        self.faults = Faults()
        self._account = account
        self._webhooks = webhooks
        self._log = log
        self._stopping = stopping
        self._keys = IdempotencyKeys()
        self._intake = threading.Lock()  # a request is logged and takes its fault at once

    def handle(self, exchange: Exchange, raw: bytes) -> None:
        method, path = exchange.method, exchange.path
        text = raw.decode("utf-8", "replace") if method == "POST" else exchange.query
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
        idem = exchange.headers.get("Idempotency-Key") if method == "POST" else None
        record = RecordedRequest(
            method=method,
            path=path,
            idempotency_key=idem,
            form=dict(pairs) if method == "POST" else {},
            query=dict(pairs) if method != "POST" else {},
            stripe_version=exchange.headers.get("Stripe-Version"),
            authorization=exchange.headers.get("Authorization"),
        )
        request_id = new_id("req_", 14)
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": exchange.headers.get("Stripe-Version") or STRIPE_API_VERSION,
        }
        if idem:
            headers["Idempotency-Key"] = idem
        with self._intake:
            self._log.add(record)
            fail, delay = self.faults.take()

        def answer(status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
            record.status = status
            if delay:
                self._stopping.wait(delay)
            exchange.send(
                status, body, {"Content-Type": "application/json", **headers, **(extra or {})}
            )

        def answer_json(status: int, payload: Any) -> None:
            answer(status, json_bytes(payload))

        if fail is not None:
            record.fault = f"fail:{fail}"
            answer_json(fail, _injected_failure(fail))
            return
        if delay:
            record.fault = f"delay:{delay}"

        key = _api_key(exchange.headers)
        if key is None:
            answer_json(
                401,
                error_body(
                    "You did not provide an API key. You need to provide your API key in the "
                    "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                    "YOUR_SECRET_KEY').",
                    type="invalid_request_error",
                ),
            )
            return
        if key != self.secret_key:
            shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
            answer_json(
                401,
                error_body(
                    f"Invalid API Key provided: {shown}",
                    type="invalid_request_error",
                    code="api_key_invalid",
                ),
            )
            return

        if idem:
            try:
                replay = self._keys.claim(key, idem, (method, path, tuple(sorted(pairs))))
            except ApiError as exc:
                answer_json(exc.status, exc.body)
                return
            if replay is not None:
                record.replayed = True
                answer(
                    replay.status,
                    replay.body,
                    {"Idempotent-Replayed": "true", "Original-Request": replay.request_id},
                )
                return

        events: Emitted = []
        keep = True
        try:
            with self._account.store.lock:
                params = decode_form(pairs)
                request = {"id": request_id, "idempotency_key": idem}
                status, payload = self._route(method, path, params, events, request)
        except ApiError as exc:
            status, payload = exc.status, exc.body
            keep = exc.status == 402  # a card error ran; validation errors save nothing
        encoded = json_bytes(payload)
        if events:
            # Counted from before the answer until queued: wait_for_deliveries sees them.
            self._webhooks.promise()
        if idem:
            if keep:
                self._keys.save(key, idem, status, encoded, request_id)
            else:
                self._keys.release(key, idem)
        try:
            answer(status, encoded)
        finally:
            if events:
                self._webhooks.dispatch_promised(events)

    def _route(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        events: Emitted,
        request: RequestRef,
    ) -> tuple[int, Any]:
        account = self._account
        rest = path[len("/v1/") :].strip("/")
        if method == "POST":
            if rest == "customers":
                return 200, account.customers.create(params)
            if rest == "checkout/sessions":
                return 200, account.checkout_sessions.create(params)
            if rest == "payment_intents":
                return 200, account.payment_intents.create(params, events, request)
            if rest == "refunds":
                return 200, account.refunds.create(params, events, request)
        if method == "GET":
            if rest == "balance_transactions":
                return 200, account.balance.list_transactions(params)
            if rest == "events":
                return 200, account.events.list(params)
            if rest == "refunds":
                return 200, account.refunds.list(params)
            match = re.fullmatch(r"customers/([^/]+)/payment_methods", rest)
            if match:
                return 200, account.payment_methods.list_for_customer(match.group(1), params)
            for collection, object_type in _COLLECTIONS.items():
                if rest.startswith(collection + "/"):
                    object_id = rest[len(collection) + 1 :]
                    if "/" not in object_id:
                        return 200, snapshot(account.store.fetch(object_id, object_type, "id"))
        raise ApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )


def _injected_failure(status: int) -> dict[str, Any]:
    if status >= 500:
        return error_body("An unknown error occurred. Please try again.", type="api_error")
    if status == 429:
        return error_body(
            "Too many requests hit the API too quickly.",
            type="invalid_request_error",
            code="rate_limit",
        )
    return error_body("Injected failure.", type="invalid_request_error")


def _api_key(headers: Message) -> str | None:
    auth = headers.get("Authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":  # curl -u sk_test_...:
        try:
            return base64.b64decode(value).decode().partition(":")[0] or None
        except ValueError:
            return None
    return None
