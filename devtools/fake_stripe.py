"""A small fake Stripe, over real HTTP, for tests and the offline demo.

It speaks the subset of Stripe's v1 REST API that `stripe_gateway` uses, the way Stripe
speaks it: form-encoded bodies with nested keys (`metadata[invoice_id]=...`,
`line_items[0][price_data][unit_amount]=...`), Bearer secret-key auth, Stripe-shaped
objects and errors, and Stripe's idempotency rules:

* same `Idempotency-Key` and same parameters: the first response is replayed, with the
  header `Idempotent-Replayed: true`;
* same key, other parameters (or another path): 400 `idempotency_error`;
* a request that fails validation (400/404) saves nothing, so the key can be used again;
  a request that ran (2xx, or a 402 card decline) is saved;
* the same key while the first request is still running: 409.

Faults injected with `fail_next` answer before the idempotency layer (like a failing load
balancer), so a retry with the same key really runs the request.  `delay_next` runs and
saves the request, then holds the answer: a client that times out and retries with the
same key gets the saved answer replayed, and only one object exists.

Hosted Checkout: a session's `url` points at `GET /checkout/{id}` on this server, a tiny
page with the amount and a Pay button that posts to `/checkout/{id}/pay` (tests may post
there directly, with `card=4000000000000002` to decline).  Paying completes the session,
creates the PaymentIntent and Charge (with fee and balance transaction) and delivers
signed webhooks to `webhook_url` before redirecting to `success_url`.

Test cards (Checkout `card=`): 4242424242424242 succeeds; 4000000000000002 declines
(generic_decline); 4000000000009995 declines (insufficient_funds); 4000000000000069
declines (expired_card). Saved in setup mode, 4000000000000341 attaches but every later
charge is declined, and 4000002760003184 needs authentication (off-session charges fail
with authentication_required).  Off-session PaymentIntents also accept Stripe's test
PaymentMethods `pm_card_visa`, `pm_card_chargeDeclined`,
`pm_card_chargeDeclinedInsufficientFunds`, `pm_card_chargeCustomerFail`,
`pm_card_authenticationRequired`.

Helpers that emit events: `refund_charge` (charge.refunded), `dispute` / `close_dispute`
(charge.dispute.created / closed), `payout` (payout.paid; its balance transactions are
listed by `GET /v1/balance_transactions?payout=po_...`), `send_event` (any event, signed
now or at a given timestamp, with any secret: re-send, reorder, delay).

Run for the demo: `python -m devtools.fake_stripe --port 12111
--webhook-url http://127.0.0.1:5000/webhooks/stripe --webhook-secret whsec_...`
"""

from __future__ import annotations

import argparse
import copy
import html
import json
import queue
import re
import secrets
import signal
import string
import threading
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from premium_billing.domain.money import CURRENCY_EXPONENTS
from premium_billing.stripe_gateway import STRIPE_API_VERSION, sign_webhook

_T = TypeVar("_T")
_ALNUM = string.ascii_letters + string.digits
_CURRENCIES = {c.lower() for c in CURRENCY_EXPONENTS}
_MIN_CHARGE = 50  # Stripe's minimum charge, about 0.50 in the major unit

# card number -> (code, decline_code, message) when paying in Checkout
_DECLINED_CARDS: dict[str, tuple[str, str, str]] = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
}
# card number -> behaviour of later off-session charges of the saved card
_CHARGE_BEHAVIOUR: dict[str, tuple[str, str, str] | None] = {
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "4000002760003184": (
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
}
# Stripe's test PaymentMethod tokens -> card number they stand for
_TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_authenticationRequired": "4000002760003184",
}

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


def _new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


def _copy(obj: _T) -> _T:
    return copy.deepcopy(obj)


class _ApiError(Exception):
    """A Stripe-shaped error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {
                "type": type,
                "code": code,
                "message": message,
                "param": param,
                **(extra or {}),
            }
        }


def _error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"type": type, "code": code, "message": message, "param": param}}


# ----------------------------------------------------------------- form decoding


_KEY_PART = re.compile(r"\[([^\]]*)\]")


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts.extend(_KEY_PART.findall("[" + rest))
    return parts


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's nested form keys to nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split_key(key)
        node: Any = root
        for i, part in enumerate(parts[:-1]):
            if part == "":
                part = str(len(node))
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise _ApiError(400, f"Invalid value for {'['.join(parts[: i + 1])}.", param=key)
            node = nxt
        last = parts[-1] or str(len(node))
        if isinstance(node.get(last), dict):
            raise _ApiError(400, f"Invalid value for {key}.", param=key)
        node[last] = value
    nested: dict[str, Any] = _listify(root)
    return nested


# ----------------------------------------------------------------- validation


def _check_unknown(params: dict[str, Any], allowed: set[str]) -> None:
    for key in params:
        if key not in allowed:
            raise _ApiError(
                400, f"Received unknown parameter: {key}", code="parameter_unknown", param=key
            )


def _int(value: Any, param: str, *, minimum: int | None = None) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise _ApiError(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param
        )
    number = int(value)
    if minimum is not None and number < minimum:
        raise _ApiError(
            400,
            f"This value must be greater than or equal to {minimum}.",
            code="parameter_invalid_integer",
            param=param,
        )
    return number


def _bool(value: Any, param: str) -> bool:
    if value in ("true", "false"):
        return bool(value == "true")
    raise _ApiError(400, f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=param)


def _str(params: dict[str, Any], name: str, *, required: bool = False, param: str = "") -> Any:
    value = params.get(name)
    param = param or name
    if value is None:
        if required:
            raise _ApiError(
                400, f"Missing required param: {param}.", code="parameter_missing", param=param
            )
        return None
    if not isinstance(value, str):
        raise _ApiError(
            400, f"Invalid string: {param}", code="parameter_invalid_string", param=param
        )
    return value


def _currency(value: Any, param: str) -> str:
    if value is None:
        raise _ApiError(
            400, f"Missing required param: {param}.", code="parameter_missing", param=param
        )
    if not isinstance(value, str) or value.lower() not in _CURRENCIES:
        raise _ApiError(400, f"Invalid currency: {value}.", param=param)
    return value.lower()


def _metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise _ApiError(400, "Invalid object", code="parameter_invalid_empty", param=param)
    if len(value) > 50:
        raise _ApiError(400, "Metadata can have at most 50 keys.", param=param)
    for key, item in value.items():
        if len(key) > 40:
            raise _ApiError(400, "Metadata keys can be at most 40 characters.", param=param)
        if not isinstance(item, str) or len(item) > 500:
            raise _ApiError(
                400, "Metadata values can be at most 500 characters.", param=f"{param}[{key}]"
            )
    return dict(value)


# ----------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    """One request the fake received (API and Checkout pages alike)."""

    method: str
    path: str
    idempotency_key: str | None
    form: dict[str, str]
    query: dict[str, str]
    stripe_version: str | None
    authorization: str | None
    status: int | None = None
    replayed: bool = False
    fault: str | None = None
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Delivery:
    """One webhook POST to `webhook_url` and what came back."""

    event_id: str
    event_type: str
    status: int | None
    error: str | None
    body: bytes
    signature: str


@dataclass
class _Saved:
    fingerprint: tuple[Any, ...]
    status: int = 0
    body: bytes = b""
    request_id: str = ""
    in_flight: bool = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeStripe


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "stripe-fake/1.0"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802
        self.server.fake._handle(self, "GET")

    def do_POST(self) -> None:  # noqa: N802
        self.server.fake._handle(self, "POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.fake._handle(self, "DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return  # quiet: tests and the demo read `fake.requests` instead


_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FakeStripe:
    """The fake Stripe server. `start()` binds 127.0.0.1 on a free port (or `port`)."""

    def __init__(
        self,
        webhook_url: str | None,
        webhook_secret: str,
        secret_key: str = "sk_test_fake",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fee_basis_points: int = 290,
        fee_fixed: int = 30,
        dispute_fee: int = 1500,
    ) -> None:
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.secret_key = secret_key
        self.auto_deliver = True  # False: events are only recorded (see `held_events`)
        self._host = host
        self._port = port
        self._fee_bp = fee_basis_points
        self._fee_fixed = fee_fixed
        self._dispute_fee = dispute_fee
        self._lock = threading.RLock()
        self._objects: dict[str, dict[str, Any]] = {}
        self._order: list[str] = []  # creation order of ids
        self._session_extra: dict[str, dict[str, Any]] = {}
        self._pm_behaviour: dict[str, tuple[str, str, str] | None] = {}
        self._txn_payout: dict[str, str] = {}
        self._saved: dict[tuple[str, str], _Saved] = {}
        self._requests: list[RecordedRequest] = []
        self._events: list[dict[str, Any]] = []
        self._held: list[dict[str, Any]] = []
        self._deliveries: list[Delivery] = []
        self._errors: list[str] = []
        self._fail: list[int] = []
        self._delay: list[float] = []
        self._stop = threading.Event()
        self._queue: queue.Queue[tuple[dict[str, Any], threading.Event] | None] = queue.Queue()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._answered_undispatched = 0

    # ------------------------------------------------------------ lifecycle
    def start(self) -> FakeStripe:
        server = _Server((self._host, self._port), _Handler)
        server.fake = self
        self._server = server
        self._port = server.server_address[1]
        serve = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-stripe",
            daemon=True,
        )
        deliver = threading.Thread(target=self._delivery_loop, name="fake-stripe-webhooks")
        deliver.daemon = True
        serve.start()
        deliver.start()
        self._threads = [serve, deliver]
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = []

    def __enter__(self) -> FakeStripe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    # ------------------------------------------------------------ fault injection
    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` API requests answer `status` without running (and save nothing)."""
        with self._lock:
            self._fail.extend([status] * n)

    def delay_next(self, n: int, seconds: float) -> None:
        """The next `n` API requests run and are saved, then answer `seconds` late."""
        with self._lock:
            self._delay.extend([seconds] * n)

    # ------------------------------------------------------------ inspection
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str, method: str = "POST") -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path and r.method == method]

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return _copy(self._events)

    @property
    def held_events(self) -> list[dict[str, Any]]:
        """Events made while `auto_deliver` was False or without a `webhook_url`."""
        with self._lock:
            return _copy(self._held)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    @property
    def errors(self) -> list[str]:
        """Tracebacks of bugs in the fake itself (answered as 500)."""
        with self._lock:
            return list(self._errors)

    def get(self, object_id: str) -> dict[str, Any]:
        with self._lock:
            return _copy(self._objects[object_id])

    def objects(self, object_type: str) -> list[dict[str, Any]]:
        """All objects of a type (`"checkout.session"`, `"charge"` ...), oldest first."""
        with self._lock:
            return [
                _copy(self._objects[i])
                for i in self._order
                if self._objects[i]["object"] == object_type
            ]

    def wait_for_deliveries(self, timeout: float = 10) -> None:
        """Block until every queued webhook has been posted."""
        deadline = time.monotonic() + timeout
        while (
            self._answered_undispatched or self._queue.unfinished_tasks
        ) and time.monotonic() < deadline:
            time.sleep(0.01)

    # ------------------------------------------------------------ HTTP plumbing
    def _handle(self, h: _Handler, method: str) -> None:
        split = urllib.parse.urlsplit(h.path)
        path = split.path
        try:
            length = int(h.headers.get("Content-Length") or 0)
            raw = h.rfile.read(length) if length else b""
            if path.startswith("/v1/"):
                self._handle_api(h, method, path, split.query, raw)
            elif path.startswith("/checkout/"):
                self._handle_checkout(h, method, path, raw)
            else:
                self._send_json(h, 404, _error_body("Not found", type="invalid_request_error"))
        except Exception:  # a bug in the fake: answer 500, keep the traceback
            with self._lock:
                self._errors.append(traceback.format_exc())
            body = _error_body("fake Stripe internal error", type="api_error")
            self._send_json(h, 500, body)

    def _send(
        self, h: _Handler, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        try:
            h.send_response(status)
            for key, value in (headers or {}).items():
                h.send_header(key, value)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
        except OSError:  # the client gave up (timeout) and closed the connection
            pass

    def _send_json(
        self, h: _Handler, status: int, payload: Any, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload, indent=2).encode("utf-8")
        self._send(h, status, body, {"Content-Type": "application/json", **(headers or {})})

    def _api_key(self, h: _Handler) -> str | None:
        auth = h.headers.get("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
        if scheme.lower() == "basic":  # curl -u sk_test_...:
            import base64

            try:
                return base64.b64decode(value).decode().partition(":")[0] or None
            except ValueError:
                return None
        return None

    def _handle_api(self, h: _Handler, method: str, path: str, query: str, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace") if method == "POST" else query
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True)
        idem = h.headers.get("Idempotency-Key") if method == "POST" else None
        record = RecordedRequest(
            method=method,
            path=path,
            idempotency_key=idem,
            form=dict(pairs) if method == "POST" else {},
            query=dict(pairs) if method != "POST" else {},
            stripe_version=h.headers.get("Stripe-Version"),
            authorization=h.headers.get("Authorization"),
        )
        request_id = _new_id("req_", 14)
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": h.headers.get("Stripe-Version") or STRIPE_API_VERSION,
        }
        if idem:
            headers["Idempotency-Key"] = idem
        with self._lock:
            self._requests.append(record)
            fail = self._fail.pop(0) if self._fail else None
            delay = self._delay.pop(0) if self._delay else None

        def answer(status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
            record.status = status
            if delay:
                self._stop.wait(delay)
            self._send(
                h, status, body, {"Content-Type": "application/json", **headers, **(extra or {})}
            )

        def answer_json(status: int, payload: Any) -> None:
            answer(status, json.dumps(payload, indent=2).encode("utf-8"))

        if fail is not None:
            record.fault = f"fail:{fail}"
            if fail >= 500:
                body = _error_body("An unknown error occurred. Please try again.", type="api_error")
            elif fail == 429:
                body = _error_body(
                    "Too many requests hit the API too quickly.",
                    type="invalid_request_error",
                    code="rate_limit",
                )
            else:
                body = _error_body("Injected failure.", type="invalid_request_error")
            answer_json(fail, body)
            return
        if delay:
            record.fault = f"delay:{delay}"

        key = self._api_key(h)
        if key is None:
            answer_json(
                401,
                _error_body(
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
                _error_body(
                    f"Invalid API Key provided: {shown}",
                    type="invalid_request_error",
                    code="api_key_invalid",
                ),
            )
            return

        saved: _Saved | None = None
        if idem:
            fingerprint = (method, path, tuple(sorted(pairs)))
            with self._lock:
                previous = self._saved.get((key, idem))
                if previous is None:
                    saved = _Saved(fingerprint=fingerprint)
                    self._saved[(key, idem)] = saved
            if previous is not None:
                if previous.fingerprint != fingerprint:
                    answer_json(
                        400,
                        _error_body(
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other "
                            f"than '{idem}' if you meant to execute a different request.",
                            type="idempotency_error",
                        ),
                    )
                    return
                if previous.in_flight:
                    answer_json(
                        409,
                        _error_body(
                            "There is currently another in-progress request using this "
                            f"Stripe-Idempotency-Key ({idem}). Please try again later.",
                            type="idempotency_error",
                            code="idempotency_key_in_use",
                        ),
                    )
                    return
                record.replayed = True
                answer(
                    previous.status,
                    previous.body,
                    {"Idempotent-Replayed": "true", "Original-Request": previous.request_id},
                )
                return

        events: list[dict[str, Any]] = []
        keep = True
        try:
            with self._lock:
                params = decode_form(pairs)
                status, payload = self._route(method, path, params, events, request_id, idem)
        except _ApiError as exc:
            status, payload = exc.status, exc.body
            keep = exc.status == 402  # a card error ran; validation errors save nothing
        encoded = json.dumps(payload, indent=2).encode("utf-8")
        if events:
            # Counted from before the answer until queued: wait_for_deliveries sees them.
            with self._lock:
                self._answered_undispatched += 1
        if saved is not None:
            with self._lock:
                if keep:
                    saved.status, saved.body, saved.request_id = status, encoded, request_id
                    saved.in_flight = False
                else:
                    self._saved.pop((key, idem or ""), None)
        try:
            answer(status, encoded)
        finally:
            if events:
                self._dispatch(events, wait=False)
                with self._lock:
                    self._answered_undispatched -= 1

    # ------------------------------------------------------------ routing
    def _route(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        events: list[dict[str, Any]],
        request_id: str,
        idem: str | None,
    ) -> tuple[int, Any]:
        rest = path[len("/v1/") :].strip("/")
        ctx = {"id": request_id, "idempotency_key": idem}
        if method == "POST":
            if rest == "customers":
                return 200, self._create_customer(params)
            if rest == "checkout/sessions":
                return 200, self._create_checkout_session(params)
            if rest == "payment_intents":
                return 200, self._create_payment_intent(params, events, ctx)
            if rest == "refunds":
                return 200, self._create_refund(params, events, ctx)
        if method == "GET":
            if rest == "balance_transactions":
                return 200, self._list_balance_transactions(params)
            if rest == "events":
                return 200, self._list(
                    "event", params, "/v1/events", lambda o: _matches(o, params, "type")
                )
            match = re.fullmatch(r"customers/([^/]+)/payment_methods", rest)
            if match:
                customer = self._fetch(match.group(1), "customer", "customer")
                return 200, self._list(
                    "payment_method",
                    params,
                    f"/v1/customers/{customer['id']}/payment_methods",
                    lambda o: o.get("customer") == customer["id"],
                )
            for collection, object_type in _COLLECTIONS.items():
                if rest.startswith(collection + "/"):
                    object_id = rest[len(collection) + 1 :]
                    if "/" not in object_id:
                        return 200, self._fetch(object_id, object_type, "id")
        raise _ApiError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )

    def _store(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._objects[obj["id"]] = obj
        self._order.append(obj["id"])
        return obj

    def _fetch(self, object_id: str, object_type: str, param: str) -> dict[str, Any]:
        obj = self._objects.get(object_id)
        if obj is None or obj["object"] != object_type:
            raise _ApiError(
                404 if param == "id" else 400,
                f"No such {object_type}: '{object_id}'",
                code="resource_missing",
                param=param,
            )
        return obj

    def _list(
        self, object_type: str, params: dict[str, Any], url: str, keep: Any = None
    ) -> dict[str, Any]:
        limit = _int(params.get("limit", "10"), "limit", minimum=1)
        if limit > 100:
            raise _ApiError(400, "This value must be less than or equal to 100.", param="limit")
        items = [
            self._objects[i]
            for i in reversed(self._order)  # newest first, as Stripe lists
            if self._objects[i]["object"] == object_type
            and (keep is None or keep(self._objects[i]))
        ]
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in items]
            if after not in ids:
                raise _ApiError(
                    400,
                    f"No such {object_type}: '{after}'",
                    code="resource_missing",
                    param="starting_after",
                )
            items = items[ids.index(after) + 1 :]
        return {
            "object": "list",
            "data": _copy(items[:limit]),
            "has_more": len(items) > limit,
            "url": url,
        }

    # ------------------------------------------------------------ resources
    def _create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_unknown(
            params, {"email", "name", "metadata", "phone", "description", "address", "expand"}
        )
        return _copy(
            self._store(
                {
                    "id": _new_id("cus_", 14),
                    "object": "customer",
                    "created": int(time.time()),
                    "email": _str(params, "email"),
                    "name": _str(params, "name"),
                    "phone": _str(params, "phone"),
                    "description": _str(params, "description"),
                    "metadata": _metadata(params.get("metadata")),
                    "livemode": False,
                    "invoice_settings": {"default_payment_method": None},
                }
            )
        )

    def _create_checkout_session(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_unknown(
            params,
            {
                "mode",
                "line_items",
                "metadata",
                "payment_intent_data",
                "setup_intent_data",
                "client_reference_id",
                "success_url",
                "cancel_url",
                "customer",
                "customer_email",
                "payment_method_types",
                "currency",
                "expand",
                "expires_at",
                "locale",
                "customer_creation",
                "submit_type",
            },
        )
        mode = _str(params, "mode", required=True)
        if mode not in ("payment", "setup"):
            raise _ApiError(
                400, f"Invalid mode: {mode} (this fake does payment and setup).", param="mode"
            )
        success_url = _str(params, "success_url", required=True)
        cancel_url = _str(params, "cancel_url")
        metadata = _metadata(params.get("metadata"))
        client_reference_id = _str(params, "client_reference_id")
        if client_reference_id is not None and len(client_reference_id) > 200:
            raise _ApiError(400, "client_reference_id is too long.", param="client_reference_id")
        customer = _str(params, "customer")
        if customer is not None:
            self._fetch(customer, "customer", "customer")
        pi_data = params.get("payment_intent_data") or {}
        seti_data = params.get("setup_intent_data") or {}
        if not isinstance(pi_data, dict) or not isinstance(seti_data, dict):
            raise _ApiError(400, "Invalid object", param="payment_intent_data")
        _check_unknown(
            pi_data,
            {
                "metadata",
                "description",
                "setup_future_usage",
                "statement_descriptor",
                "receipt_email",
            },
        )
        _check_unknown(seti_data, {"metadata", "description"})
        pi_metadata = _metadata(pi_data.get("metadata"), "payment_intent_data[metadata]")
        seti_metadata = _metadata(seti_data.get("metadata"), "setup_intent_data[metadata]")
        line_items = params.get("line_items")
        currency: str | None = None
        total = 0
        items: list[dict[str, Any]] = []
        if mode == "payment":
            if not line_items:
                raise _ApiError(
                    400,
                    "Missing required param: line_items.",
                    code="parameter_missing",
                    param="line_items",
                )
            if not isinstance(line_items, list):
                raise _ApiError(400, "Invalid array", param="line_items")
            for i, item in enumerate(line_items):
                prefix = f"line_items[{i}]"
                if not isinstance(item, dict):
                    raise _ApiError(400, "Invalid object", param=prefix)
                _check_unknown(item, {"price_data", "quantity", "price"})
                if "price" in item:
                    raise _ApiError(
                        400,
                        f"No such price: '{item['price']}'",
                        code="resource_missing",
                        param=f"{prefix}[price]",
                    )
                price = item.get("price_data")
                if not isinstance(price, dict):
                    raise _ApiError(
                        400,
                        f"Missing required param: {prefix}[price_data].",
                        code="parameter_missing",
                        param=f"{prefix}[price_data]",
                    )
                item_currency = _currency(price.get("currency"), f"{prefix}[price_data][currency]")
                if currency is not None and item_currency != currency:
                    raise _ApiError(
                        400,
                        "All line items must use the same currency.",
                        param=f"{prefix}[price_data][currency]",
                    )
                currency = item_currency
                if price.get("unit_amount") is None:
                    raise _ApiError(
                        400,
                        f"Missing required param: {prefix}[price_data][unit_amount].",
                        code="parameter_missing",
                        param=f"{prefix}[price_data][unit_amount]",
                    )
                unit_amount = _int(
                    price.get("unit_amount"), f"{prefix}[price_data][unit_amount]", minimum=0
                )
                product = price.get("product_data") or {}
                name = product.get("name") if isinstance(product, dict) else None
                if not name:
                    raise _ApiError(
                        400,
                        f"Missing required param: {prefix}[price_data][product_data][name].",
                        code="parameter_missing",
                        param=f"{prefix}[price_data][product_data][name]",
                    )
                if item.get("quantity") is None:
                    raise _ApiError(
                        400,
                        f"Missing required param: {prefix}[quantity].",
                        code="parameter_missing",
                        param=f"{prefix}[quantity]",
                    )
                quantity = _int(item["quantity"], f"{prefix}[quantity]", minimum=1)
                total += unit_amount * quantity
                items.append({"name": name, "unit_amount": unit_amount, "quantity": quantity})
            if total < _MIN_CHARGE:
                raise _ApiError(
                    400,
                    "The Checkout Session's total amount due must add up to at least 0.50.",
                    code="amount_too_small",
                    param="line_items",
                )
        else:
            if line_items:
                raise _ApiError(
                    400, "You can not pass `line_items` in `setup` mode.", param="line_items"
                )
            if params.get("currency") is None and not params.get("payment_method_types"):
                raise _ApiError(
                    400,
                    "Missing required param: currency.",
                    code="parameter_missing",
                    param="currency",
                )
            if params.get("currency") is not None:
                currency = _currency(params.get("currency"), "currency")
        now = int(time.time())
        session_id = _new_id("cs_test_", 58)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_subtotal": total if mode == "payment" else None,
            "amount_total": total if mode == "payment" else None,
            "cancel_url": cancel_url,
            "client_reference_id": client_reference_id,
            "created": now,
            "currency": currency,
            "customer": customer,
            "customer_details": None,
            "customer_email": _str(params, "customer_email"),
            "expires_at": now + 24 * 3600,
            "livemode": False,
            "metadata": metadata,
            "mode": mode,
            "payment_intent": None,
            "payment_method_types": ["card"],
            "payment_status": "unpaid" if mode == "payment" else "no_payment_required",
            "setup_intent": None,
            "status": "open",
            "success_url": success_url,
            "url": f"{self.base_url}/checkout/{session_id}",
        }
        self._store(session)
        self._session_extra[session_id] = {
            "items": items,
            "pi_metadata": pi_metadata,
            "pi_description": pi_data.get("description"),
            "seti_metadata": seti_metadata,
        }
        return _copy(session)

    def _fee(self, amount: int) -> int:
        return (amount * self._fee_bp + 5000) // 10000 + self._fee_fixed

    def _balance_txn(
        self,
        *,
        amount: int,
        fee: int,
        currency: str,
        source: str,
        type: str,
        category: str,
        description: str | None = None,
    ) -> dict[str, Any]:
        now = int(time.time())
        return self._store(
            {
                "id": _new_id("txn_"),
                "object": "balance_transaction",
                "amount": amount,
                "available_on": now,
                "created": now,
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
        )

    def _payment_method(
        self, card: str, customer: str | None, billing: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        pm = self._store(
            {
                "id": _new_id("pm_"),
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
                "created": int(time.time()),
                "livemode": False,
                "metadata": {},
            }
        )
        self._pm_behaviour[pm["id"]] = _CHARGE_BEHAVIOUR.get(card)
        return pm

    def _charge(
        self, pi: dict[str, Any], pm: dict[str, Any], failure: tuple[str, str, str] | None
    ) -> dict[str, Any]:
        amount, currency = pi["amount"], pi["currency"]
        charge_id = _new_id("ch_")
        txn = None
        if failure is None:
            txn = self._balance_txn(
                amount=amount,
                fee=self._fee(amount),
                currency=currency,
                source=charge_id,
                type="charge",
                category="charge",
                description=pi.get("description"),
            )
        return self._store(
            {
                "id": charge_id,
                "object": "charge",
                "amount": amount,
                "amount_captured": amount if failure is None else 0,
                "amount_refunded": 0,
                "balance_transaction": txn["id"] if txn else None,
                "billing_details": pm.get("billing_details"),
                "captured": failure is None,
                "created": int(time.time()),
                "currency": currency,
                "customer": pi.get("customer"),
                "description": pi.get("description"),
                "disputed": False,
                "failure_code": failure[0] if failure else None,
                "failure_message": failure[2] if failure else None,
                "livemode": False,
                "metadata": dict(pi.get("metadata") or {}),
                "outcome": {
                    "network_status": "approved_by_network"
                    if failure is None
                    else "declined_by_network",
                    "reason": failure[1] if failure else None,
                    "type": "authorized" if failure is None else "issuer_declined",
                },
                "paid": failure is None,
                "payment_intent": pi["id"],
                "payment_method": pm["id"],
                "payment_method_details": {"type": "card", "card": dict(pm["card"])},
                "refunded": False,
                "status": "succeeded" if failure is None else "failed",
            }
        )

    def _confirm(
        self, pi: dict[str, Any], pm: dict[str, Any], failure: tuple[str, str, str] | None
    ) -> dict[str, Any]:
        """Charge `pm` for `pi`; returns the charge. Updates the PaymentIntent."""
        charge = self._charge(pi, pm, failure)
        pi["latest_charge"] = charge["id"]
        pi["payment_method"] = pm["id"]
        if failure is None:
            pi["status"] = "succeeded"
            pi["amount_received"] = pi["amount"]
            pi["last_payment_error"] = None
        else:
            pi["status"] = "requires_payment_method"
            pi["last_payment_error"] = {
                "type": "card_error",
                "code": failure[0],
                "decline_code": failure[1],
                "message": failure[2],
                "charge": charge["id"],
                "payment_method": _copy(pm),
                "doc_url": f"https://stripe.com/docs/error-codes/{failure[0].replace('_', '-')}",
            }
            pi["payment_method"] = None
        return charge

    def _new_payment_intent(
        self,
        *,
        amount: int,
        currency: str,
        customer: str | None,
        metadata: dict[str, str],
        description: str | None = None,
        status: str = "requires_payment_method",
    ) -> dict[str, Any]:
        return self._store(
            {
                "id": _new_id("pi_"),
                "object": "payment_intent",
                "amount": amount,
                "amount_received": 0,
                "capture_method": "automatic",
                "client_secret": None,
                "confirmation_method": "automatic",
                "created": int(time.time()),
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
        )

    def _resolve_payment_method(self, pm_id: str, customer: str | None) -> dict[str, Any]:
        if pm_id in _TEST_PAYMENT_METHODS:
            return self._payment_method(_TEST_PAYMENT_METHODS[pm_id], customer)
        pm = self._fetch(pm_id, "payment_method", "payment_method")
        if pm.get("customer") and customer and pm["customer"] != customer:
            raise _ApiError(
                400,
                f"The provided PaymentMethod ({pm_id}) is attached to another customer.",
                param="payment_method",
            )
        return pm

    def _create_payment_intent(
        self, params: dict[str, Any], events: list[dict[str, Any]], ctx: dict[str, Any]
    ) -> dict[str, Any]:
        _check_unknown(
            params,
            {
                "amount",
                "currency",
                "customer",
                "payment_method",
                "payment_method_types",
                "confirm",
                "off_session",
                "metadata",
                "description",
                "automatic_payment_methods",
                "receipt_email",
                "statement_descriptor_suffix",
                "setup_future_usage",
                "return_url",
                "expand",
                "capture_method",
            },
        )
        if params.get("amount") is None:
            raise _ApiError(
                400, "Missing required param: amount.", code="parameter_missing", param="amount"
            )
        amount = _int(params["amount"], "amount", minimum=1)
        if amount < _MIN_CHARGE:
            raise _ApiError(
                400, "Amount must be at least 0.50.", code="amount_too_small", param="amount"
            )
        currency = _currency(params.get("currency"), "currency")
        customer = _str(params, "customer")
        if customer is not None:
            self._fetch(customer, "customer", "customer")
        confirm = _bool(params["confirm"], "confirm") if "confirm" in params else False
        off_session = (
            _bool(params["off_session"], "off_session") if "off_session" in params else False
        )
        if off_session and not confirm:
            raise _ApiError(
                400, "off_session can only be used when confirm=true.", param="off_session"
            )
        if params.get("capture_method") not in (None, "automatic"):
            raise _ApiError(
                400, "This fake supports capture_method=automatic only.", param="capture_method"
            )
        pm_id = _str(params, "payment_method")
        pm = self._resolve_payment_method(pm_id, customer) if pm_id else None
        if confirm and pm is None:
            raise _ApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        pi = self._new_payment_intent(
            amount=amount,
            currency=currency,
            customer=customer,
            metadata=_metadata(params.get("metadata")),
            description=_str(params, "description"),
            status="requires_confirmation" if pm else "requires_payment_method",
        )
        if pm is not None:
            pi["payment_method"] = pm["id"]
        if not confirm or pm is None:
            return _copy(pi)
        failure = self._pm_behaviour.get(pm["id"])
        if failure is not None and failure[0] == "authentication_required" and not off_session:
            failure = None  # on-session the customer would complete 3-D Secure
        charge = self._confirm(pi, pm, failure)
        if failure is None:
            events.append(self._event("payment_intent.succeeded", pi, ctx=ctx))
            return _copy(pi)
        events.append(self._event("payment_intent.payment_failed", pi, ctx=ctx))
        raise _ApiError(
            402,
            failure[2],
            type="card_error",
            code=failure[0],
            extra={
                "decline_code": failure[1],
                "charge": charge["id"],
                "payment_intent": _copy(pi),
                "payment_method": _copy(pm),
                "doc_url": f"https://stripe.com/docs/error-codes/{failure[0].replace('_', '-')}",
            },
        )

    def _find_charge(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("charge"):
            return self._fetch(params["charge"], "charge", "charge")
        pi_id = params.get("payment_intent")
        if not pi_id:
            raise _ApiError(
                400,
                "One of the following params should be provided for this "
                "request: payment_intent or charge.",
                code="parameter_missing",
                param="payment_intent",
            )
        pi = self._fetch(pi_id, "payment_intent", "payment_intent")
        if pi["status"] != "succeeded" or not pi.get("latest_charge"):
            raise _ApiError(
                400,
                f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        return self._objects[pi["latest_charge"]]

    def _refund(
        self,
        charge: dict[str, Any],
        amount: int | None,
        metadata: dict[str, str],
        reason: str | None,
        events: list[dict[str, Any]],
        ctx: dict[str, Any] | None,
    ) -> dict[str, Any]:
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise _ApiError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
                param="charge",
            )
        if amount is None:
            amount = remaining
        if amount > remaining:
            raise _ApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount "
                f"on charge ({remaining})",
                code="amount_too_large",
                param="amount",
            )
        refund_id = _new_id("re_")
        txn = self._balance_txn(
            amount=-amount,
            fee=0,
            currency=charge["currency"],
            source=refund_id,
            type="refund",
            category="refund",
        )
        refund = self._store(
            {
                "id": refund_id,
                "object": "refund",
                "amount": amount,
                "balance_transaction": txn["id"],
                "charge": charge["id"],
                "created": int(time.time()),
                "currency": charge["currency"],
                "metadata": metadata,
                "payment_intent": charge.get("payment_intent"),
                "reason": reason,
                "status": "succeeded",
            }
        )
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        events.append(self._event("charge.refunded", charge, previous=previous, ctx=ctx))
        return refund

    def _create_refund(
        self, params: dict[str, Any], events: list[dict[str, Any]], ctx: dict[str, Any]
    ) -> dict[str, Any]:
        _check_unknown(
            params, {"payment_intent", "charge", "amount", "metadata", "reason", "expand"}
        )
        charge = self._find_charge(params)
        amount = _int(params["amount"], "amount", minimum=1) if "amount" in params else None
        reason = _str(params, "reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise _ApiError(400, f"Invalid reason: {reason}", param="reason")
        refund = self._refund(
            charge, amount, _metadata(params.get("metadata")), reason, events, ctx
        )
        return _copy(refund)

    def _list_balance_transactions(self, params: dict[str, Any]) -> dict[str, Any]:
        _check_unknown(
            params,
            {
                "payout",
                "type",
                "source",
                "currency",
                "limit",
                "starting_after",
                "ending_before",
                "expand",
                "created",
            },
        )
        payout = params.get("payout")
        if payout:
            po = self._fetch(payout, "payout", "payout")
            payout = po["id"]

        def keep(txn: dict[str, Any]) -> bool:
            if payout and self._txn_payout.get(txn["id"]) != payout:
                return False
            return all(params.get(k) in (None, txn.get(k)) for k in ("type", "source", "currency"))

        return self._list("balance_transaction", params, "/v1/balance_transactions", keep)

    # ------------------------------------------------------------ events
    def _event(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        previous: dict[str, Any] | None = None,
        ctx: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": _copy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = {
            "id": _new_id("evt_"),
            "object": "event",
            "api_version": STRIPE_API_VERSION,
            "created": int(time.time()),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": dict(ctx) if ctx else {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        self._store(event)
        self._events.append(event)
        return _copy(event)

    def _dispatch(self, events: list[dict[str, Any]], *, wait: bool) -> list[threading.Event]:
        if not events:
            return []
        if not self.webhook_url or not self.auto_deliver:
            with self._lock:
                self._held.extend(_copy(events))
            return []
        done: list[threading.Event] = []
        for event in events:
            flag = threading.Event()
            self._queue.put((event, flag))
            done.append(flag)
        if wait:
            for flag in done:
                flag.wait(timeout=30)
        return done

    def _delivery_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                event, flag = item
                try:
                    self.send_event(event)
                finally:
                    flag.set()
            finally:
                self._queue.task_done()

    def send_event(
        self,
        event: dict[str, Any],
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        url: str | None = None,
    ) -> Delivery:
        """Sign `event` (now, or at `timestamp`; with `secret` or the configured one) and
        POST it to the webhook URL, as Stripe does. Returns what the endpoint answered."""
        target = url or self.webhook_url
        if not target:
            raise RuntimeError("no webhook_url configured")
        body = json.dumps(event, indent=2).encode("utf-8")
        header = sign_webhook(
            body,
            secret or self.webhook_secret,
            int(time.time()) if timestamp is None else timestamp,
        )
        request = urllib.request.Request(
            target,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": header,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Cache-Control": "no-cache",
            },
        )
        status: int | None = None
        error: str | None = None
        try:
            with _NO_PROXY_OPENER.open(request, timeout=10) as response:
                status = response.status
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.read()
            exc.close()
        except (urllib.error.URLError, OSError) as exc:
            error = str(exc)
        delivery = Delivery(
            event_id=str(event.get("id")),
            event_type=str(event.get("type")),
            status=status,
            error=error,
            body=body,
            signature=header,
        )
        with self._lock:
            self._deliveries.append(delivery)
        return delivery

    # ------------------------------------------------------------ test helpers
    def create_customer(self, email: str | None = None, name: str | None = None) -> str:
        with self._lock:
            params = {k: v for k, v in (("email", email), ("name", name)) if v is not None}
            return str(self._create_customer(params)["id"])

    def create_payment_method(self, customer: str | None, card: str = "4242424242424242") -> str:
        """A card saved on `customer`, as setup-mode Checkout would leave it."""
        with self._lock:
            if customer is not None:
                self._fetch(customer, "customer", "customer")
            return str(self._payment_method(card, customer)["id"])

    def refund_charge(
        self, charge: str, amount: int | None = None, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Refund from the Dashboard (charge or PaymentIntent id): emits charge.refunded."""
        events: list[dict[str, Any]] = []
        with self._lock:
            key = "payment_intent" if charge.startswith("pi_") else "charge"
            found = self._find_charge({key: charge})
            refund = _copy(self._refund(found, amount, {}, reason, events, None))
        self._dispatch(events, wait=True)
        return refund

    def dispute(
        self,
        charge: str,
        *,
        amount: int | None = None,
        reason: str = "fraudulent",
        outcome: str | None = None,
    ) -> dict[str, Any]:
        """The cardholder disputes `charge`: charge.dispute.created (and, with `outcome`
        "won" or "lost", charge.dispute.closed)."""
        events: list[dict[str, Any]] = []
        with self._lock:
            ch = self._fetch(charge, "charge", "charge")
            amount = ch["amount"] if amount is None else amount
            dispute_id = _new_id("dp_")
            txn = self._balance_txn(
                amount=-amount,
                fee=self._dispute_fee,
                currency=ch["currency"],
                source=dispute_id,
                type="adjustment",
                category="dispute",
                description=f"Chargeback withdrawal for {charge}",
            )
            dispute = self._store(
                {
                    "id": dispute_id,
                    "object": "dispute",
                    "amount": amount,
                    "balance_transactions": [_copy(txn)],
                    "charge": ch["id"],
                    "created": int(time.time()),
                    "currency": ch["currency"],
                    "evidence": {},
                    "is_charge_refundable": False,
                    "livemode": False,
                    "metadata": {},
                    "payment_intent": ch.get("payment_intent"),
                    "reason": reason,
                    "status": "needs_response",
                }
            )
            ch["disputed"] = True
            events.append(self._event("charge.dispute.created", dispute))
            if outcome is not None:
                events.append(self._close_dispute(dispute, outcome))
            result = _copy(dispute)
        self._dispatch(events, wait=True)
        return result

    def _close_dispute(self, dispute: dict[str, Any], outcome: str) -> dict[str, Any]:
        if outcome not in ("won", "lost"):
            raise ValueError("outcome is 'won' or 'lost'")
        if dispute["status"] in ("won", "lost"):
            raise ValueError(f"dispute {dispute['id']} is already closed")
        previous = {"status": dispute["status"]}
        dispute["status"] = outcome
        if outcome == "won":
            txn = self._balance_txn(
                amount=dispute["amount"],
                fee=-self._dispute_fee,
                currency=dispute["currency"],
                source=dispute["id"],
                type="adjustment",
                category="dispute_reversal",
                description=f"Chargeback reversal for {dispute['charge']}",
            )
            dispute["balance_transactions"].append(_copy(txn))
        return self._event("charge.dispute.closed", dispute, previous=previous)

    def close_dispute(self, dispute_id: str, outcome: str) -> dict[str, Any]:
        with self._lock:
            dispute = self._fetch(dispute_id, "dispute", "dispute")
            event = self._close_dispute(dispute, outcome)
            result = _copy(dispute)
        self._dispatch([event], wait=True)
        return result

    def payout(self, currency: str = "usd") -> dict[str, Any]:
        """Pay out every balance transaction not yet paid out in `currency`: payout.paid.
        The payout amount is their net sum (charges - refunds - fees, disputes)."""
        currency = currency.lower()
        with self._lock:
            txns = [
                self._objects[i]
                for i in self._order
                if self._objects[i]["object"] == "balance_transaction"
                and self._objects[i]["currency"] == currency
                and self._objects[i]["type"] != "payout"
                and i not in self._txn_payout
            ]
            total = sum(t["net"] for t in txns)
            if total <= 0:
                raise ValueError(f"nothing to pay out in {currency} (net {total})")
            payout_id = _new_id("po_")
            payout_txn = self._balance_txn(
                amount=-total,
                fee=0,
                currency=currency,
                source=payout_id,
                type="payout",
                category="payout",
                description="STRIPE PAYOUT",
            )
            now = int(time.time())
            payout = self._store(
                {
                    "id": payout_id,
                    "object": "payout",
                    "amount": total,
                    "arrival_date": now,
                    "automatic": True,
                    "balance_transaction": payout_txn["id"],
                    "created": now,
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
            )
            for txn in [*txns, payout_txn]:
                self._txn_payout[txn["id"]] = payout_id
            events = [self._event("payout.paid", payout)]
            result = _copy(payout)
        self._dispatch(events, wait=True)
        return result

    def pay(self, session_id: str, card: str = "4242424242424242") -> int:
        """POST the Checkout Pay form over HTTP; returns the status (303 when paid)."""
        data = urllib.parse.urlencode({"card": card}).encode()
        request = urllib.request.Request(
            f"{self.base_url}/checkout/{session_id}/pay", data=data, method="POST"
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        try:
            with opener.open(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)

    # ------------------------------------------------------------ hosted Checkout
    def _handle_checkout(self, h: _Handler, method: str, path: str, raw: bytes) -> None:
        record = RecordedRequest(
            method=method,
            path=path,
            idempotency_key=None,
            form=dict(urllib.parse.parse_qsl(raw.decode("utf-8", "replace"))),
            query={},
            stripe_version=None,
            authorization=None,
        )
        with self._lock:
            self._requests.append(record)
        match = re.fullmatch(r"/checkout/([^/]+)(/pay)?", path)
        with self._lock:
            session = self._objects.get(match.group(1)) if match else None
            if session is not None and session["object"] != "checkout.session":
                session = None
            session = _copy(session) if session else None
        if session is None or match is None:
            record.status = 404
            self._send_html(h, 404, "<h1>Not found</h1><p>No such Checkout Session.</p>")
            return
        if method == "GET" and not match.group(2):
            record.status = 200
            self._send_html(h, 200, self._checkout_page(session))
            return
        if method != "POST" or not match.group(2):
            record.status = 405
            self._send_html(h, 405, "<h1>Method not allowed</h1>")
            return
        card = re.sub(r"\D", "", record.form.get("card") or "") or "4242424242424242"
        billing = {
            "email": record.form.get("email") or session.get("customer_email"),
            "name": record.form.get("name") or None,
        }
        events: list[dict[str, Any]] = []
        with self._lock:
            live = self._objects[session["id"]]
            if live["status"] != "open":
                record.status = 409
                self._send_html(h, 409, "<h1>This Checkout Session is no longer active.</h1>")
                return
            failure = _DECLINED_CARDS.get(card)
            if live["mode"] == "setup" and card == "4000000000000341":
                failure = None  # attaching succeeds; later charges fail
            if live["mode"] == "payment":
                self._complete_payment(live, card, billing, failure, events)
            else:
                self._complete_setup(live, card, billing, failure, events)
            session = _copy(live)
        self._dispatch(events, wait=True)
        if failure is not None:
            record.status = 402
            page = self._checkout_page(session, error=failure[2])
            self._send_html(h, 402, page)
            return
        location = (session["success_url"] or "").replace("{CHECKOUT_SESSION_ID}", session["id"])
        record.status = 303
        self._send(h, 303, b"", {"Location": location})

    def _complete_payment(
        self,
        session: dict[str, Any],
        card: str,
        billing: dict[str, Any],
        failure: tuple[str, str, str] | None,
        events: list[dict[str, Any]],
    ) -> None:
        extra = self._session_extra[session["id"]]
        pm = self._payment_method(card, None, billing)
        pi = self._new_payment_intent(
            amount=session["amount_total"],
            currency=session["currency"],
            customer=session["customer"],
            metadata=dict(extra["pi_metadata"]),
            description=extra.get("pi_description"),
        )
        self._confirm(pi, pm, failure)
        if failure is not None:
            events.append(self._event("payment_intent.payment_failed", pi))
            return
        session.update(
            status="complete",
            payment_status="paid",
            payment_intent=pi["id"],
            customer_details={"email": billing.get("email"), "name": billing.get("name")},
        )
        events.append(self._event("checkout.session.completed", session))
        events.append(self._event("payment_intent.succeeded", pi))

    def _complete_setup(
        self,
        session: dict[str, Any],
        card: str,
        billing: dict[str, Any],
        failure: tuple[str, str, str] | None,
        events: list[dict[str, Any]],
    ) -> None:
        extra = self._session_extra[session["id"]]
        if failure is not None:
            return
        pm = self._payment_method(card, session["customer"], billing)
        seti = self._store(
            {
                "id": _new_id("seti_"),
                "object": "setup_intent",
                "created": int(time.time()),
                "customer": session["customer"],
                "livemode": False,
                "metadata": dict(extra["seti_metadata"]),
                "payment_method": pm["id"],
                "payment_method_types": ["card"],
                "status": "succeeded",
                "usage": "off_session",
            }
        )
        session.update(
            status="complete",
            setup_intent=seti["id"],
            customer_details={"email": billing.get("email"), "name": billing.get("name")},
        )
        events.append(self._event("setup_intent.succeeded", seti))
        events.append(self._event("checkout.session.completed", session))

    def _send_html(self, h: _Handler, status: int, body_html: str) -> None:
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>Fake Stripe Checkout</title></head><body>" + body_html + "</body></html>"
        )
        self._send(h, status, page.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})

    def _checkout_page(self, session: dict[str, Any], error: str | None = None) -> str:
        esc = html.escape
        if session["status"] != "open":
            return "<h1>Already paid</h1><p>This Checkout Session is complete.</p>"
        items = self._session_extra.get(session["id"], {}).get("items", [])
        if session["mode"] == "payment":
            currency = (session["currency"] or "usd").upper()
            digits = CURRENCY_EXPONENTS.get(currency, 2)
            amount = session["amount_total"] or 0
            shown = f"{amount / 10**digits:,.{digits}f}" if digits else f"{amount:,}"
            title = esc(", ".join(i["name"] for i in items) or "Payment")
            lines = (
                f"<h1 id='description'>{title}</h1>"
                f"<p>Amount due: <strong id='amount' data-amount='{amount}'>"
                f"{esc(currency)} {esc(shown)}</strong></p>"
            )
            button = "Pay"
        else:
            lines = "<h1>Save a card for future payments</h1>"
            button = "Save card"
        error_html = f"<p id='error' role='alert'>{esc(error)}</p>" if error else ""
        cancel = (
            f"<p><a id='cancel' href='{esc(session['cancel_url'])}'>Cancel</a></p>"
            if session.get("cancel_url")
            else ""
        )
        return (
            f"{lines}{error_html}"
            f"<form method='post' action='/checkout/{esc(session['id'])}/pay'>"
            "<label>Card number <input name='card' id='card' value='4242 4242 4242 4242'>"
            "</label> "
            "<label>Email <input name='email' id='email' type='email'></label> "
            f"<button type='submit' id='pay'>{button}</button></form>{cancel}"
            "<p><small>Test mode: 4000 0000 0000 0002 declines.</small></p>"
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _matches(obj: dict[str, Any], params: dict[str, Any], key: str) -> bool:
    return params.get(key) in (None, obj.get(key))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.fake_stripe", description="A fake Stripe for the demo."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--webhook-secret", required=True)
    parser.add_argument("--secret-key", default="sk_test_fake")
    args = parser.parse_args(argv)
    fake = FakeStripe(
        args.webhook_url, args.webhook_secret, args.secret_key, host=args.host, port=args.port
    ).start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    print(f"fake Stripe listening on {fake.base_url} (webhooks to {args.webhook_url})", flush=True)
    while not stopping.wait(0.5):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
