"""Checkout Sessions: created over the API (`POST /v1/checkout/sessions`), paid on the
hosted page (`checkout_page.py`).  Paying a payment-mode session makes the PaymentIntent and
its charge; paying a setup-mode session saves the card (a SetupIntent and a PaymentMethod)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import objects
from .cards import Decline, checkout_decline
from .params import (
    MIN_CHARGE,
    ApiError,
    check_unknown,
    currency_param,
    int_param,
    metadata_param,
    missing_param,
    str_param,
)
from .resources import Emitted, EventLog, PaymentIntents, PaymentMethods
from .store import ObjectStore, snapshot

_SESSION_PARAMS = {
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
}
_PAYMENT_INTENT_DATA = {
    "metadata",
    "description",
    "setup_future_usage",
    "statement_descriptor",
    "receipt_email",
}


@dataclass(frozen=True)
class LineItem:
    name: str
    unit_amount: int
    quantity: int


@dataclass(frozen=True)
class _Intents:
    """What a session passes on to the intent that paying it makes (not in its JSON)."""

    pi_metadata: dict[str, str]
    pi_description: str | None
    seti_metadata: dict[str, str]


class CheckoutSessions:
    def __init__(
        self,
        store: ObjectStore,
        methods: PaymentMethods,
        intents: PaymentIntents,
        events: EventLog,
        *,
        base_url: Callable[[], str],
    ) -> None:
        self._store = store
        self._methods = methods
        self._intents = intents
        self._events = events
        self._base_url = base_url
        self._items: dict[str, list[LineItem]] = {}
        self._passed_on: dict[str, _Intents] = {}

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/checkout/sessions`, in payment mode (with `price_data` line items) or
        setup mode."""
        check_unknown(params, _SESSION_PARAMS)
        mode = str_param(params, "mode", required=True)
        if mode not in ("payment", "setup"):
            raise ApiError(
                400, f"Invalid mode: {mode} (this fake does payment and setup).", param="mode"
            )
        success_url = str_param(params, "success_url", required=True)
        cancel_url = str_param(params, "cancel_url")
        metadata = metadata_param(params.get("metadata"))
        client_reference_id = str_param(params, "client_reference_id")
        if client_reference_id is not None and len(client_reference_id) > 200:
            raise ApiError(400, "client_reference_id is too long.", param="client_reference_id")
        customer = str_param(params, "customer")
        if customer is not None:
            self._store.fetch(customer, "customer", "customer")
        pi_data = params.get("payment_intent_data") or {}
        seti_data = params.get("setup_intent_data") or {}
        if not isinstance(pi_data, dict) or not isinstance(seti_data, dict):
            raise ApiError(400, "Invalid object", param="payment_intent_data")
        check_unknown(pi_data, _PAYMENT_INTENT_DATA)
        check_unknown(seti_data, {"metadata", "description"})
        passed_on = _Intents(
            pi_metadata=metadata_param(pi_data.get("metadata"), "payment_intent_data[metadata]"),
            pi_description=pi_data.get("description"),
            seti_metadata=metadata_param(seti_data.get("metadata"), "setup_intent_data[metadata]"),
        )
        line_items = params.get("line_items")
        currency: str | None = None
        total = 0
        items: list[LineItem] = []
        if mode == "payment":
            currency, items = _line_items(line_items)
            total = sum(i.unit_amount * i.quantity for i in items)
            if total < MIN_CHARGE:
                raise ApiError(
                    400,
                    "The Checkout Session's total amount due must add up to at least 0.50.",
                    code="amount_too_small",
                    param="line_items",
                )
        else:
            if line_items:
                raise ApiError(
                    400, "You can not pass `line_items` in `setup` mode.", param="line_items"
                )
            if params.get("currency") is None and not params.get("payment_method_types"):
                raise missing_param("currency")
            if params.get("currency") is not None:
                currency = currency_param(params.get("currency"), "currency")
        session_id = objects.new_id("cs_test_", 58)
        session = objects.checkout_session(
            session_id=session_id,
            url=f"{self._base_url()}/checkout/{session_id}",
            mode=mode,
            total=total,
            currency=currency,
            customer=customer,
            customer_email=str_param(params, "customer_email"),
            client_reference_id=client_reference_id,
            metadata=metadata,
            success_url=success_url,
            cancel_url=cancel_url,
        )
        self._store.add(session)
        self._items[session_id] = items
        self._passed_on[session_id] = passed_on
        return snapshot(session)

    def find(self, session_id: str) -> dict[str, Any] | None:
        """A snapshot of the session, None when there is none."""
        with self._store.lock:
            session = self._store.find(session_id, "checkout.session")
            return snapshot(session) if session else None

    def line_items(self, session_id: str) -> list[LineItem]:
        return list(self._items.get(session_id, []))

    def pay(
        self, session_id: str, card: str, billing: dict[str, Any], events: Emitted
    ) -> tuple[dict[str, Any], Decline | None] | None:
        """The customer submits `card` (and `billing` details) on the page of an existing
        session: the session paid (or the card saved), or the card declined.  Returns a
        snapshot of the session and the decline; None if the session is no longer open."""
        with self._store.lock:
            session = self._store.get(session_id)
            if session["status"] != "open":
                return None
            decline = checkout_decline(card, session["mode"])
            if session["mode"] == "payment":
                self._complete_payment(session, card, billing, decline, events)
            else:
                self._complete_setup(session, card, billing, decline, events)
            return snapshot(session), decline

    def _complete_payment(
        self,
        session: dict[str, Any],
        card: str,
        billing: dict[str, Any],
        decline: Decline | None,
        events: Emitted,
    ) -> None:
        passed_on = self._passed_on[session["id"]]
        pm = self._methods.create(card, None, billing)
        pi = self._intents.new(
            amount=session["amount_total"],
            currency=session["currency"],
            customer=session["customer"],
            metadata=dict(passed_on.pi_metadata),
            description=passed_on.pi_description,
        )
        self._intents.confirm(pi, pm, decline)
        if decline is not None:
            events.append(self._events.emit("payment_intent.payment_failed", pi))
            return
        session.update(
            status="complete",
            payment_status="paid",
            payment_intent=pi["id"],
            customer_details={"email": billing.get("email"), "name": billing.get("name")},
        )
        events.append(self._events.emit("checkout.session.completed", session))
        events.append(self._events.emit("payment_intent.succeeded", pi))

    def _complete_setup(
        self,
        session: dict[str, Any],
        card: str,
        billing: dict[str, Any],
        decline: Decline | None,
        events: Emitted,
    ) -> None:
        passed_on = self._passed_on[session["id"]]
        if decline is not None:
            return
        pm = self._methods.create(card, session["customer"], billing)
        seti = self._store.add(
            objects.setup_intent(
                customer=session["customer"],
                payment_method=pm["id"],
                metadata=dict(passed_on.seti_metadata),
            )
        )
        session.update(
            status="complete",
            setup_intent=seti["id"],
            customer_details={"email": billing.get("email"), "name": billing.get("name")},
        )
        events.append(self._events.emit("setup_intent.succeeded", seti))
        events.append(self._events.emit("checkout.session.completed", session))


def _line_items(line_items: Any) -> tuple[str | None, list[LineItem]]:
    """The currency and the items of `line_items` (`price_data`, not prices)."""
    if not line_items:
        raise missing_param("line_items")
    if not isinstance(line_items, list):
        raise ApiError(400, "Invalid array", param="line_items")
    currency: str | None = None
    items: list[LineItem] = []
    for i, item in enumerate(line_items):
        prefix = f"line_items[{i}]"
        if not isinstance(item, dict):
            raise ApiError(400, "Invalid object", param=prefix)
        check_unknown(item, {"price_data", "quantity", "price"})
        if "price" in item:
            raise ApiError(
                400,
                f"No such price: '{item['price']}'",
                code="resource_missing",
                param=f"{prefix}[price]",
            )
        price = item.get("price_data")
        if not isinstance(price, dict):
            raise missing_param(f"{prefix}[price_data]")
        item_currency = currency_param(price.get("currency"), f"{prefix}[price_data][currency]")
        if currency is not None and item_currency != currency:
            raise ApiError(
                400,
                "All line items must use the same currency.",
                param=f"{prefix}[price_data][currency]",
            )
        currency = item_currency
        if price.get("unit_amount") is None:
            raise missing_param(f"{prefix}[price_data][unit_amount]")
        unit_amount = int_param(
            price.get("unit_amount"), f"{prefix}[price_data][unit_amount]", minimum=0
        )
        product = price.get("product_data") or {}
        name = product.get("name") if isinstance(product, dict) else None
        if not name:
            raise missing_param(f"{prefix}[price_data][product_data][name]")
        if item.get("quantity") is None:
            raise missing_param(f"{prefix}[quantity]")
        quantity = int_param(item["quantity"], f"{prefix}[quantity]", minimum=1)
        items.append(LineItem(name=name, unit_amount=unit_amount, quantity=quantity))
    return currency, items
