"""The fake Stripe server: the HTTP server and its routing (`/v1/...` to the API,
`/checkout/...` to the Checkout page), and `FakeStripe`, the facade that tests and the demo
use: lifecycle, fault injection, inspection, and helpers that act as the Dashboard, the
cardholder or the bank would (refunds, disputes, payouts), emitting their events."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .account import Account
from .api import StripeApi
from .cards import DEFAULT_CARD
from .checkout_page import CheckoutPage, submit_pay_form
from .params import error_body
from .resources import Emitted
from .store import snapshot
from .webhooks import Delivery, WebhookSender
from .wire import Exchange, RecordedRequest, RequestLog


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    route: Callable[[Exchange], None]  # the FakeStripe that serves


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "stripe-fake/1.0"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802
        self.server.route(Exchange(self, "GET"))

    def do_POST(self) -> None:  # noqa: N802
        self.server.route(Exchange(self, "POST"))

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.route(Exchange(self, "DELETE"))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return  # quiet: tests and the demo read `fake.requests` instead


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
        self._host = host
        self._port = port
        self._stopping = threading.Event()
        self._log = RequestLog()
        self._errors: list[str] = []
        self._errors_lock = threading.Lock()
        self._webhooks = WebhookSender(webhook_url, webhook_secret)
        self._account = Account(
            base_url=lambda: self.base_url,
            pending_webhooks=lambda: 1 if self._webhooks.url else 0,
            fee_basis_points=fee_basis_points,
            fee_fixed=fee_fixed,
            dispute_fee=dispute_fee,
        )
        self._api = StripeApi(
            self._account, self._webhooks, self._log, secret_key=secret_key, stopping=self._stopping
        )
        self._checkout = CheckoutPage(self._account.checkout_sessions, self._webhooks, self._log)
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None

    # ------------------------------------------------------------ configuration
    @property
    def webhook_url(self) -> str | None:
        """Where events are POSTed (None: they are held)."""
        return self._webhooks.url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self._webhooks.url = url

    @property
    def webhook_secret(self) -> str:
        return self._webhooks.secret

    @webhook_secret.setter
    def webhook_secret(self, secret: str) -> None:
        self._webhooks.secret = secret

    @property
    def auto_deliver(self) -> bool:
        """False: events are only recorded (see `held_events`)."""
        return self._webhooks.auto_deliver

    @auto_deliver.setter
    def auto_deliver(self, on: bool) -> None:
        self._webhooks.auto_deliver = on

    @property
    def secret_key(self) -> str:
        return self._api.secret_key

    @secret_key.setter
    def secret_key(self, key: str) -> None:
        self._api.secret_key = key

    # ------------------------------------------------------------ lifecycle
    def start(self) -> FakeStripe:
        server = _Server((self._host, self._port), _Handler)
        server.route = self._route
        self._server = server
        self._port = server.server_address[1]
        self._serve_thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-stripe",
            daemon=True,
        )
        self._serve_thread.start()
        self._webhooks.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._webhooks.stop()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout=5)
            self._serve_thread = None

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

    # ------------------------------------------------------------ HTTP routing
    def _route(self, exchange: Exchange) -> None:
        try:
            raw = exchange.read_body()
            if exchange.path.startswith("/v1/"):
                self._api.handle(exchange, raw)
            elif exchange.path.startswith("/checkout/"):
                self._checkout.handle(exchange, raw)
            else:
                exchange.send_json(404, error_body("Not found", type="invalid_request_error"))
        except Exception:  # a bug in the fake: answer 500, keep the traceback
            with self._errors_lock:
                self._errors.append(traceback.format_exc())
            exchange.send_json(500, error_body("fake Stripe internal error", type="api_error"))

    # ------------------------------------------------------------ fault injection
    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next `n` API requests answer `status` without running (and save nothing)."""
        self._api.faults.fail_next(n, status)

    def delay_next(self, n: int, seconds: float) -> None:
        """The next `n` API requests run and are saved, then answer `seconds` late."""
        self._api.faults.delay_next(n, seconds)

    # ------------------------------------------------------------ inspection
    @property
    def requests(self) -> list[RecordedRequest]:
        return self._log.all()

    def requests_to(self, path: str, method: str = "POST") -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path and r.method == method]

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.objects("event")

    @property
    def held_events(self) -> list[dict[str, Any]]:
        """Events made while `auto_deliver` was False or without a `webhook_url`."""
        return self._webhooks.held

    @property
    def deliveries(self) -> list[Delivery]:
        return self._webhooks.deliveries

    @property
    def errors(self) -> list[str]:
        """Tracebacks of bugs in the fake itself (answered as 500)."""
        with self._errors_lock:
            return list(self._errors)

    def get(self, object_id: str) -> dict[str, Any]:
        with self._account.store.lock:
            return snapshot(self._account.store.get(object_id))

    def objects(self, object_type: str) -> list[dict[str, Any]]:
        """All objects of a type (`"checkout.session"`, `"charge"` ...), oldest first."""
        with self._account.store.lock:
            return snapshot(self._account.store.all(object_type))

    def wait_for_deliveries(self, timeout: float = 10) -> None:
        """Block until every queued webhook has been posted."""
        self._webhooks.wait_for_deliveries(timeout)

    # ------------------------------------------------------------ webhooks
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
        return self._webhooks.send(event, timestamp=timestamp, secret=secret, url=url)

    # ------------------------------------------------------------ test helpers
    def create_customer(self, email: str | None = None, name: str | None = None) -> str:
        with self._account.store.lock:
            params = {k: v for k, v in (("email", email), ("name", name)) if v is not None}
            return str(self._account.customers.create(params)["id"])

    def create_payment_method(self, customer: str | None, card: str = DEFAULT_CARD) -> str:
        """A card saved on `customer`, as setup-mode Checkout would leave it."""
        with self._account.store.lock:
            if customer is not None:
                self._account.store.fetch(customer, "customer", "customer")
            return str(self._account.payment_methods.create(card, customer)["id"])

    def refund_charge(
        self, charge: str, amount: int | None = None, *, reason: str | None = None
    ) -> dict[str, Any]:
        """Refund from the Dashboard (charge or PaymentIntent id): emits charge.refunded."""
        events: Emitted = []
        with self._account.store.lock:
            refund = self._account.refunds.refund_by_id(charge, amount, reason, events)
            result = snapshot(refund)
        self._webhooks.dispatch(events, wait=True)
        return result

    @property
    def refunds_pending(self) -> bool:
        """True: new refunds start `pending` (until `settle_refund`), as bank debits' do."""
        return self._account.refunds.pending

    @refunds_pending.setter
    def refunds_pending(self, on: bool) -> None:
        self._account.refunds.pending = on

    def settle_refund(self, refund_id: str) -> dict[str, Any]:
        """A pending refund succeeds: refund.updated."""
        events: Emitted = []
        with self._account.store.lock:
            refund = self._account.store.fetch(refund_id, "refund", "refund")
            self._account.refunds.settle(refund, events)
            result = snapshot(refund)
        self._webhooks.dispatch(events, wait=True)
        return result

    def fail_refund(
        self, refund_id: str, reason: str = "expired_or_canceled_card"
    ) -> dict[str, Any]:
        """The refund fails (the card was closed): refund.updated and refund.failed."""
        events: Emitted = []
        with self._account.store.lock:
            refund = self._account.store.fetch(refund_id, "refund", "refund")
            self._account.refunds.fail(refund, reason, events)
            result = snapshot(refund)
        self._webhooks.dispatch(events, wait=True)
        return result

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
        events: Emitted = []
        with self._account.store.lock:
            dispute = self._account.disputes.open(
                charge, amount=amount, reason=reason, outcome=outcome, events=events
            )
            result = snapshot(dispute)
        self._webhooks.dispatch(events, wait=True)
        return result

    def close_dispute(self, dispute_id: str, outcome: str) -> dict[str, Any]:
        """The dispute is decided, "won" or "lost": charge.dispute.closed."""
        events: Emitted = []
        with self._account.store.lock:
            dispute = self._account.store.fetch(dispute_id, "dispute", "dispute")
            self._account.disputes.close(dispute, outcome, events)
            result = snapshot(dispute)
        self._webhooks.dispatch(events, wait=True)
        return result

    def payout(self, currency: str = "usd") -> dict[str, Any]:
        """Pay out every balance transaction not yet paid out in `currency`: payout.paid.
        The payout amount is their net sum (charges - refunds - fees, disputes)."""
        events: Emitted = []
        with self._account.store.lock:
            payout = self._account.balance.pay_out(currency.lower(), events)
            result = snapshot(payout)
        self._webhooks.dispatch(events, wait=True)
        return result

    def pay(self, session_id: str, card: str = DEFAULT_CARD) -> int:
        """POST the Checkout Pay form over HTTP; returns the status (303 when paid)."""
        return submit_pay_form(self.base_url, session_id, card)
