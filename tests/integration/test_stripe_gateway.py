"""The Stripe gateway against the fake Stripe, over real HTTP (no mocks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devtools.fake_stripe import FakeStripe
from premium_billing.stripe_billing.gateway import (
    STRIPE_API_VERSION,
    CheckoutSession,
    GatewayRequestError,
    GatewayUnavailable,
    IdempotencyConflict,
    StripeGateway,
    verify_webhook,
)

WEBHOOK_SECRET = "whsec_integration_test"
CHECKOUT_PATH = "/v1/checkout/sessions"


@dataclass
class Receiver:
    """A webhook endpoint that records what it gets and answers 200."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                rec.received.append((dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/stripe"
    yield rec
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def fake(receiver: Receiver) -> Iterator[FakeStripe]:
    server = FakeStripe(receiver.url, WEBHOOK_SECRET).start()
    yield server
    server.stop()
    assert server.errors == []  # the fake itself never crashed


def make_gateway(fake: FakeStripe, **kwargs: Any) -> StripeGateway:
    kwargs.setdefault("timeout_seconds", 5)
    return StripeGateway(fake.secret_key, fake.base_url, **kwargs)


@pytest.fixture
def gateway(fake: FakeStripe) -> Iterator[StripeGateway]:
    gw = make_gateway(fake)
    yield gw
    gw.close()


def checkout(gw: StripeGateway, key: str = "inv_1:checkout:1", **overrides: Any) -> CheckoutSession:
    args: dict[str, Any] = {
        "amount": 48000,
        "currency": "USD",
        "description": "Invoice INV-000001 (PET-000123)",
        "metadata": {"invoice_id": "inv_1", "policy_number": "PET-000123"},
        "client_reference_id": "inv_1",
        "success_url": "http://portal.test/paid?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "http://portal.test/cancelled",
        "customer": None,
        "idempotency_key": key,
    }
    args.update(overrides)
    return gw.create_checkout_session(**args)


# ------------------------------------------------------------------ checkout


def test_checkout_session_carries_amount_metadata_and_reference(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    session = checkout(gateway)

    assert session.id.startswith("cs_test_")
    assert session.url == f"{fake.base_url}/checkout/{session.id}"
    [request] = fake.requests_to(CHECKOUT_PATH)
    assert request.idempotency_key == "inv_1:checkout:1"
    assert request.stripe_version == STRIPE_API_VERSION
    assert request.authorization == f"Bearer {fake.secret_key}"
    form = request.form
    assert form["mode"] == "payment"
    assert form["line_items[0][price_data][unit_amount]"] == "48000"
    assert form["line_items[0][price_data][currency]"] == "usd"
    assert form["line_items[0][quantity]"] == "1"
    assert form["metadata[invoice_id]"] == "inv_1"
    assert form["payment_intent_data[metadata][invoice_id]"] == "inv_1"
    assert form["client_reference_id"] == "inv_1"
    stored = fake.get(session.id)
    assert stored["object"] == "checkout.session"
    assert stored["amount_total"] == 48000
    assert stored["currency"] == "usd"
    assert stored["metadata"] == {"invoice_id": "inv_1", "policy_number": "PET-000123"}
    assert stored["client_reference_id"] == "inv_1"
    assert stored["status"] == "open" and stored["payment_status"] == "unpaid"


def test_paying_checkout_delivers_signed_webhooks_in_order(
    fake: FakeStripe, gateway: StripeGateway, receiver: Receiver
) -> None:
    session = checkout(gateway)

    assert fake.pay(session.id) == 303

    assert receiver.types() == ["checkout.session.completed", "payment_intent.succeeded"]
    for headers, body in receiver.received:
        event = verify_webhook(body, headers.get("Stripe-Signature"), [WEBHOOK_SECRET])
        assert event["object"] == "event" and event["id"].startswith("evt_")
        assert event["api_version"] == STRIPE_API_VERSION and event["livemode"] is False
    completed, succeeded = receiver.events()
    assert completed["data"]["object"]["id"] == session.id
    assert completed["data"]["object"]["payment_status"] == "paid"
    assert completed["data"]["object"]["client_reference_id"] == "inv_1"
    pi = succeeded["data"]["object"]
    assert pi["id"] == completed["data"]["object"]["payment_intent"]
    assert pi["amount"] == 48000 and pi["metadata"]["invoice_id"] == "inv_1"
    charge = fake.get(pi["latest_charge"])
    assert charge["paid"] is True and charge["metadata"]["invoice_id"] == "inv_1"
    assert [r.status for r in fake.requests if r.path.endswith("/pay")] == [303]


def test_declined_card_in_checkout_leaves_the_session_open(
    fake: FakeStripe, gateway: StripeGateway, receiver: Receiver
) -> None:
    session = checkout(gateway)

    assert fake.pay(session.id, card="4000000000000002") == 402

    assert fake.get(session.id)["status"] == "open"
    assert receiver.types() == ["payment_intent.payment_failed"]


# ------------------------------------------------------------------ idempotency and retries


def test_retried_500_reuses_the_same_idempotency_key(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    fake.fail_next(1, status=500)

    session = checkout(gateway, key="inv_1:checkout:retry")

    attempts = fake.requests_to(CHECKOUT_PATH)
    assert [a.status for a in attempts] == [500, 200]
    assert {a.idempotency_key for a in attempts} == {"inv_1:checkout:retry"}
    sessions = fake.objects("checkout.session")
    assert [s["id"] for s in sessions] == [session.id]


def test_timeout_retry_reuses_the_key_and_gets_the_first_result_replayed(
    fake: FakeStripe,
) -> None:
    fake.delay_next(1, 2.0)  # the first attempt runs, then answers too late
    with make_gateway(fake, timeout_seconds=0.5, max_network_retries=2) as gw:
        session = checkout(gw, key="inv_1:checkout:timeout")

    attempts = fake.requests_to(CHECKOUT_PATH)
    # Two attempts; three when a loaded machine makes the retry time out too (max 2
    # retries): every retry carries the key and is answered with the first's result.
    assert 2 <= len(attempts) <= 3
    assert {a.idempotency_key for a in attempts} == {"inv_1:checkout:timeout"}
    assert [a.replayed for a in attempts] == [False] + [True] * (len(attempts) - 1)
    sessions = fake.objects("checkout.session")
    assert [s["id"] for s in sessions] == [session.id]


def test_5xx_after_retries_is_unavailable_and_the_callers_retry_is_safe(
    fake: FakeStripe,
) -> None:
    fake.fail_next(2, status=503)
    with make_gateway(fake, max_network_retries=1) as gw:
        with pytest.raises(GatewayUnavailable) as excinfo:
            checkout(gw, key="inv_1:checkout:stored")
        assert excinfo.value.http_status == 503
        assert fake.objects("checkout.session") == []

        session = checkout(gw, key="inv_1:checkout:stored")  # the caller's later retry

    attempts = fake.requests_to(CHECKOUT_PATH)
    assert [a.status for a in attempts] == [503, 503, 200]
    assert {a.idempotency_key for a in attempts} == {"inv_1:checkout:stored"}
    assert [s["id"] for s in fake.objects("checkout.session")] == [session.id]


def test_unreachable_stripe_is_gateway_unavailable() -> None:
    fake = FakeStripe(None, WEBHOOK_SECRET).start()
    base = fake.base_url
    fake.stop()  # nothing listens there any more
    gw = StripeGateway("sk_test_fake", base, max_network_retries=0, timeout_seconds=1)
    with gw, pytest.raises(GatewayUnavailable):
        gw.create_customer(email=None, name=None, metadata={}, idempotency_key="k")


def test_same_key_with_other_parameters_is_an_idempotency_conflict(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    first = checkout(gateway, key="inv_1:checkout:1", amount=48000)
    again = checkout(gateway, key="inv_1:checkout:1", amount=48000)
    assert again == first
    assert fake.requests_to(CHECKOUT_PATH)[-1].replayed is True

    with pytest.raises(IdempotencyConflict) as excinfo:
        checkout(gateway, key="inv_1:checkout:1", amount=50000)

    assert isinstance(excinfo.value, GatewayRequestError)
    assert excinfo.value.http_status == 400
    assert len(fake.objects("checkout.session")) == 1


def test_empty_idempotency_key_is_refused_before_any_request(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    with pytest.raises(ValueError):
        checkout(gateway, key="")
    assert fake.requests == []


# ------------------------------------------------------------------ errors


def test_4xx_maps_to_request_error_with_param_and_is_not_retried(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    with pytest.raises(GatewayRequestError) as excinfo:
        checkout(gateway, amount=-5)

    error = excinfo.value
    assert not isinstance(error, GatewayUnavailable)
    assert error.http_status == 400
    assert error.param == "line_items[0][price_data][unit_amount]"
    assert error.code == "parameter_invalid_integer"
    assert error.error_type == "invalid_request_error"
    assert len(fake.requests_to(CHECKOUT_PATH)) == 1
    assert fake.objects("checkout.session") == []


def test_unknown_customer_is_request_error_on_customer(gateway: StripeGateway) -> None:
    with pytest.raises(GatewayRequestError) as excinfo:
        checkout(gateway, customer="cus_doesnotexist")
    assert excinfo.value.param == "customer"
    assert excinfo.value.code == "resource_missing"


def test_wrong_secret_key_is_a_401_request_error(fake: FakeStripe) -> None:
    gw = StripeGateway("sk_test_wrong_key_0000", fake.base_url, timeout_seconds=5)
    with gw, pytest.raises(GatewayRequestError) as excinfo:
        gw.create_customer(email="a@example.com", name="A", metadata={}, idempotency_key="k")
    assert excinfo.value.http_status == 401


# ------------------------------------------------------------------ autopay


def test_off_session_decline_returns_a_result_with_the_decline_code(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    customer = gateway.create_customer(
        email="ann@example.com",
        name="Ann",
        metadata={"policyholder_id": "ph_1"},
        idempotency_key="ph_1:customer",
    )
    card = fake.create_payment_method(customer, card="4000000000009995")

    result = gateway.charge_off_session(
        amount=4000,
        currency="USD",
        customer=customer,
        payment_method=card,
        metadata={"invoice_id": "inv_2"},
        idempotency_key="inv_2:autopay:1",
    )

    assert result.id.startswith("pi_")
    assert result.status == "requires_payment_method"
    assert result.failure_code == "insufficient_funds"
    assert result.failure_message
    assert fake.get(result.id)["status"] == "requires_payment_method"
    [request] = fake.requests_to("/v1/payment_intents")
    assert request.form["off_session"] == "true" and request.form["confirm"] == "true"
    assert request.form["metadata[invoice_id]"] == "inv_2"


@pytest.mark.parametrize(
    ("payment_method", "status", "failure_code"),
    [
        ("pm_card_visa", "succeeded", None),
        ("pm_card_chargeCustomerFail", "requires_payment_method", "generic_decline"),
        ("pm_card_authenticationRequired", "requires_payment_method", "authentication_required"),
    ],
)
def test_off_session_outcomes(
    gateway: StripeGateway, payment_method: str, status: str, failure_code: str | None
) -> None:
    customer = gateway.create_customer(
        email=None, name=None, metadata={}, idempotency_key=f"cus:{payment_method}"
    )
    result = gateway.charge_off_session(
        amount=4000,
        currency="usd",
        customer=customer,
        payment_method=payment_method,
        metadata={},
        idempotency_key=f"pi:{payment_method}",
    )
    assert (result.status, result.failure_code) == (status, failure_code)


def test_setup_session_saves_a_card_that_autopay_can_charge(
    fake: FakeStripe, gateway: StripeGateway, receiver: Receiver
) -> None:
    customer = gateway.create_customer(
        email="bo@example.com", name="Bo", metadata={}, idempotency_key="ph_2:customer"
    )
    session = gateway.create_setup_session(
        customer=customer,
        success_url="http://portal.test/saved",
        cancel_url="http://portal.test/cancel",
        metadata={"policyholder_id": "ph_2"},
        idempotency_key="ph_2:setup:1",
    )
    assert fake.pay(session.id) == 303
    assert receiver.types() == ["setup_intent.succeeded", "checkout.session.completed"]
    setup_intent = receiver.events()[0]["data"]["object"]
    assert setup_intent["customer"] == customer
    assert setup_intent["metadata"] == {"policyholder_id": "ph_2"}

    result = gateway.charge_off_session(
        amount=4000,
        currency="usd",
        customer=customer,
        payment_method=setup_intent["payment_method"],
        metadata={"invoice_id": "inv_3"},
        idempotency_key="inv_3:autopay:1",
    )
    assert result.status == "succeeded" and result.failure_code is None
    fake.wait_for_deliveries()
    assert receiver.types()[-1] == "payment_intent.succeeded"


# ------------------------------------------------------------------ refunds, payouts, disputes


def paid_payment_intent(fake: FakeStripe, gateway: StripeGateway, key: str) -> dict[str, Any]:
    session = checkout(gateway, key=key)
    assert fake.pay(session.id) == 303
    return fake.get(fake.get(session.id)["payment_intent"])


def test_refunds_and_payout_balance_transactions_add_up(
    fake: FakeStripe, gateway: StripeGateway, receiver: Receiver
) -> None:
    pi = paid_payment_intent(fake, gateway, "inv_1:checkout:1")

    refund = gateway.refund(
        payment_intent=pi["id"],
        amount=1000,
        metadata={"reason": "cancellation"},
        idempotency_key="inv_1:refund:1",
    )
    assert refund.status == "succeeded" and refund.amount == 1000 and refund.id.startswith("re_")
    fake.wait_for_deliveries()
    fake.refund_charge(pi["latest_charge"], 500)
    refunded = [e for e in receiver.events() if e["type"] == "charge.refunded"]
    assert [e["data"]["object"]["amount_refunded"] for e in refunded] == [1000, 1500]

    payout = fake.payout("usd")
    assert receiver.types()[-1] == "payout.paid"
    txns = gateway.payout_balance_transactions(payout["id"])

    moves = [t for t in txns if t.type != "payout"]
    charges = sum(t.amount for t in moves if t.type == "charge")
    refunds = -sum(t.amount for t in moves if t.type == "refund")
    fees = sum(t.fee for t in moves)
    assert (charges, refunds) == (48000, 1500)
    assert fees > 0
    assert charges - refunds - fees == payout["amount"] == sum(t.net for t in moves)
    [own] = [t for t in txns if t.type == "payout"]
    assert own.source == payout["id"] and own.amount == -payout["amount"]


def test_refund_beyond_the_charge_is_a_request_error(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    pi = paid_payment_intent(fake, gateway, "inv_1:checkout:1")
    with pytest.raises(GatewayRequestError) as excinfo:
        gateway.refund(
            payment_intent=pi["id"], amount=48001, metadata={}, idempotency_key="too-much"
        )
    assert excinfo.value.param == "amount"


def test_dispute_emits_created_then_closed(
    fake: FakeStripe, gateway: StripeGateway, receiver: Receiver
) -> None:
    pi = paid_payment_intent(fake, gateway, "inv_1:checkout:1")

    dispute = fake.dispute(pi["latest_charge"], outcome="lost")

    assert dispute["status"] == "lost"
    disputes = [e for e in receiver.events() if e["type"].startswith("charge.dispute.")]
    assert [e["type"] for e in disputes] == ["charge.dispute.created", "charge.dispute.closed"]
    assert [e["data"]["object"]["status"] for e in disputes] == ["needs_response", "lost"]
