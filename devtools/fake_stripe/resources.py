"""The API resources of the fake account, one class each: what creating, paying, refunding,
disputing and paying out do to the objects, and the events they emit.

Each method that takes `events` appends the events it emits, for the caller to deliver once
the request is answered (a declined payment emits its event and then raises its 402).
`request` is the API request an event is attributed to (`{"id", "idempotency_key"}`), None
for what happens outside the API (Checkout, the Dashboard helpers).  Callers hold
`store.lock`; the `create` methods (API answers) and `emit` return snapshots, the others
return live objects, for the caller to snapshot before it lets go of the lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import objects
from .cards import TEST_PAYMENT_METHODS, Decline, charge_decline
from .params import (
    MIN_CHARGE,
    ApiError,
    bool_param,
    check_unknown,
    currency_param,
    int_param,
    metadata_param,
    missing_param,
    str_param,
)
from .store import ObjectStore, snapshot

Emitted = list[dict[str, Any]]
RequestRef = dict[str, Any] | None


class EventLog:
    """Events: made (and stored, for `GET /v1/events`) by the resources; delivering them is
    the webhook sender's business."""

    def __init__(self, store: ObjectStore, pending_webhooks: Callable[[], int]) -> None:
        self._store = store
        self._pending_webhooks = pending_webhooks

    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        previous: dict[str, Any] | None = None,
        request: RequestRef = None,
    ) -> dict[str, Any]:
        """A new event about (a snapshot of) `obj`; returns a snapshot of it."""
        event = objects.event(
            event_type,
            snapshot(obj),
            previous=previous,
            request=request,
            pending_webhooks=self._pending_webhooks(),
        )
        self._store.add(event)
        return snapshot(event)

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        """`GET /v1/events` (`type=` filters)."""
        return self._store.page(
            "event", params, "/v1/events", lambda e: params.get("type") in (None, e.get("type"))
        )


class Customers:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    def create(self, params: dict[str, Any]) -> dict[str, Any]:
        """`POST /v1/customers`."""
        check_unknown(
            params, {"email", "name", "metadata", "phone", "description", "address", "expand"}
        )
        customer = objects.customer(
            email=str_param(params, "email"),
            name=str_param(params, "name"),
            phone=str_param(params, "phone"),
            description=str_param(params, "description"),
            metadata=metadata_param(params.get("metadata")),
        )
        return snapshot(self._store.add(customer))


class Balance:
    """The account's balance: a balance transaction for every charge, refund, dispute and
    payout, Stripe's fees on charges, and payouts of what has not been paid out yet."""

    def __init__(
        self, store: ObjectStore, events: EventLog, *, fee_basis_points: int, fee_fixed: int
    ) -> None:
        self._store = store
        self._events = events
        self._fee_bp = fee_basis_points
        self._fee_fixed = fee_fixed
        self._paid_out_by: dict[str, str] = {}  # balance transaction id -> payout id

    def fee(self, amount: int) -> int:
        """Stripe's processing fee on a charge of `amount`."""
        return (amount * self._fee_bp + 5000) // 10000 + self._fee_fixed

    def record(
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
        """A new balance transaction (live)."""
        return self._store.add(
            objects.balance_transaction(
                amount=amount,
                fee=fee,
                currency=currency,
                source=source,
                type=type,
                category=category,
                description=description,
            )
        )

    def list_transactions(self, params: dict[str, Any]) -> dict[str, Any]:
        """`GET /v1/balance_transactions` (`payout=`, `type=`, `source=`, `currency=`)."""
        check_unknown(
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
            payout = self._store.fetch(payout, "payout", "payout")["id"]

        def keep(txn: dict[str, Any]) -> bool:
            if payout and self._paid_out_by.get(txn["id"]) != payout:
                return False
            return all(params.get(k) in (None, txn.get(k)) for k in ("type", "source", "currency"))

        return self._store.page("balance_transaction", params, "/v1/balance_transactions", keep)

    def pay_out(self, currency: str, events: Emitted) -> dict[str, Any]:
        """Pay out every balance transaction not yet paid out in `currency` (payout.paid).
        The payout amount is their net sum; ValueError when that is not positive."""
        txns = [
            t
            for t in self._store.all("balance_transaction")
            if t["currency"] == currency
            and t["type"] != "payout"
            and t["id"] not in self._paid_out_by
        ]
        total = sum(t["net"] for t in txns)
        if total <= 0:
            raise ValueError(f"nothing to pay out in {currency} (net {total})")
        payout_id = objects.new_id("po_")
        payout_txn = self.record(
            amount=-total,
            fee=0,
            currency=currency,
            source=payout_id,
            type="payout",
            category="payout",
            description="STRIPE PAYOUT",
        )
        payout = self._store.add(
            objects.payout(
                payout_id=payout_id,
                amount=total,
                balance_transaction=payout_txn["id"],
                currency=currency,
            )
        )
        for txn in [*txns, payout_txn]:
            self._paid_out_by[txn["id"]] = payout_id
        events.append(self._events.emit("payout.paid", payout))
        return payout


class PaymentMethods:
    """Saved cards, and how each one behaves when charged later."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._declines: dict[str, Decline | None] = {}  # payment method id -> its charges

    def create(
        self, card: str, customer: str | None, billing: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        pm = self._store.add(objects.payment_method(card, customer, billing))
        self._declines[pm["id"]] = charge_decline(card)
        return pm

    def resolve(self, pm_id: str, customer: str | None) -> dict[str, Any]:
        """The PaymentMethod of parameter `payment_method`: a saved one (not another
        customer's), or a new one for one of Stripe's test tokens (`pm_card_visa` ...)."""
        if pm_id in TEST_PAYMENT_METHODS:
            return self.create(TEST_PAYMENT_METHODS[pm_id], customer)
        pm = self._store.fetch(pm_id, "payment_method", "payment_method")
        if pm.get("customer") and customer and pm["customer"] != customer:
            raise ApiError(
                400,
                f"The provided PaymentMethod ({pm_id}) is attached to another customer.",
                param="payment_method",
            )
        return pm

    def decline(self, pm_id: str) -> Decline | None:
        """How a charge of the PaymentMethod is declined (None: it succeeds)."""
        return self._declines.get(pm_id)

    def list_for_customer(self, customer_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """`GET /v1/customers/{id}/payment_methods`."""
        customer = self._store.fetch(customer_id, "customer", "customer")
        return self._store.page(
            "payment_method",
            params,
            f"/v1/customers/{customer['id']}/payment_methods",
            lambda pm: pm.get("customer") == customer["id"],
        )


class PaymentIntents:
    """PaymentIntents and the charges that confirming them makes."""

    def __init__(
        self, store: ObjectStore, methods: PaymentMethods, balance: Balance, events: EventLog
    ) -> None:
        self._store = store
        self._methods = methods
        self._balance = balance
        self._events = events

    def new(
        self,
        *,
        amount: int,
        currency: str,
        customer: str | None,
        metadata: dict[str, str],
        description: str | None = None,
        status: str = "requires_payment_method",
    ) -> dict[str, Any]:
        return self._store.add(
            objects.payment_intent(
                amount=amount,
                currency=currency,
                customer=customer,
                metadata=metadata,
                description=description,
                status=status,
            )
        )

    def confirm(
        self, pi: dict[str, Any], pm: dict[str, Any], decline: Decline | None
    ) -> dict[str, Any]:
        """Charge `pm` for `pi` (declined with `decline`); returns the charge. Updates the
        PaymentIntent."""
        charge = self._charge(pi, pm, decline)
        pi["latest_charge"] = charge["id"]
        pi["payment_method"] = pm["id"]
        if decline is None:
            pi["status"] = "succeeded"
            pi["amount_received"] = pi["amount"]
            pi["last_payment_error"] = None
        else:
            pi["status"] = "requires_payment_method"
            pi["last_payment_error"] = objects.last_payment_error(
                decline, charge["id"], snapshot(pm)
            )
            pi["payment_method"] = None
        return charge

    def _charge(
        self, pi: dict[str, Any], pm: dict[str, Any], decline: Decline | None
    ) -> dict[str, Any]:
        charge_id = objects.new_id("ch_")
        txn = None
        if decline is None:
            txn = self._balance.record(
                amount=pi["amount"],
                fee=self._balance.fee(pi["amount"]),
                currency=pi["currency"],
                source=charge_id,
                type="charge",
                category="charge",
                description=pi.get("description"),
            )
        return self._store.add(
            objects.charge(
                charge_id=charge_id,
                payment_intent=pi,
                payment_method=pm,
                balance_transaction=txn["id"] if txn else None,
                decline=decline,
            )
        )

    def create(
        self, params: dict[str, Any], events: Emitted, request: RequestRef
    ) -> dict[str, Any]:
        """`POST /v1/payment_intents`; with `confirm=true` it charges at once, and a decline
        is a 402 card_error (after the payment_intent.payment_failed event)."""
        check_unknown(
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
            raise missing_param("amount")
        amount = int_param(params["amount"], "amount", minimum=1)
        if amount < MIN_CHARGE:
            raise ApiError(
                400, "Amount must be at least 0.50.", code="amount_too_small", param="amount"
            )
        currency = currency_param(params.get("currency"), "currency")
        customer = str_param(params, "customer")
        if customer is not None:
            self._store.fetch(customer, "customer", "customer")
        confirm = bool_param(params["confirm"], "confirm") if "confirm" in params else False
        off_session = (
            bool_param(params["off_session"], "off_session") if "off_session" in params else False
        )
        if off_session and not confirm:
            raise ApiError(
                400, "off_session can only be used when confirm=true.", param="off_session"
            )
        if params.get("capture_method") not in (None, "automatic"):
            raise ApiError(
                400, "This fake supports capture_method=automatic only.", param="capture_method"
            )
        pm_id = str_param(params, "payment_method")
        pm = self._methods.resolve(pm_id, customer) if pm_id else None
        if confirm and pm is None:
            raise ApiError(
                400,
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
                param="payment_method",
            )
        pi = self.new(
            amount=amount,
            currency=currency,
            customer=customer,
            metadata=metadata_param(params.get("metadata")),
            description=str_param(params, "description"),
            status="requires_confirmation" if pm else "requires_payment_method",
        )
        if pm is not None:
            pi["payment_method"] = pm["id"]
        if not confirm or pm is None:
            return snapshot(pi)
        decline = self._methods.decline(pm["id"])
        if decline is not None and decline.code == "authentication_required" and not off_session:
            decline = None  # on-session the customer would complete 3-D Secure
        charge = self.confirm(pi, pm, decline)
        if decline is None:
            events.append(self._events.emit("payment_intent.succeeded", pi, request=request))
            return snapshot(pi)
        events.append(self._events.emit("payment_intent.payment_failed", pi, request=request))
        raise ApiError(
            402,
            decline.message,
            type="card_error",
            code=decline.code,
            extra={
                "decline_code": decline.decline_code,
                "charge": charge["id"],
                "payment_intent": snapshot(pi),
                "payment_method": snapshot(pm),
                "doc_url": objects.error_doc_url(decline.code),
            },
        )


class Refunds:
    """Refunds of charges: `succeeded` at once (cards), or `pending` while `pending` is set
    (as for bank debits) until `settle`; `fail` makes one fail (the money comes back)."""

    def __init__(self, store: ObjectStore, balance: Balance, events: EventLog) -> None:
        self._store = store
        self._balance = balance
        self._events = events
        self.pending = False  # new refunds start `pending` (see `settle`)

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        """`GET /v1/refunds` (`charge=`, `payment_intent=`), newest first."""
        check_unknown(
            params,
            {"charge", "payment_intent", "limit", "starting_after", "ending_before", "expand",
             "created"},
        )  # fmt: skip
        charge, pi = params.get("charge"), params.get("payment_intent")
        if charge:
            self._store.fetch(charge, "charge", "charge")
        if pi:
            self._store.fetch(pi, "payment_intent", "payment_intent")

        def keep(refund: dict[str, Any]) -> bool:
            return charge in (None, refund["charge"]) and pi in (None, refund["payment_intent"])

        return self._store.page("refund", params, "/v1/refunds", keep)

    def settle(self, refund: dict[str, Any], events: Emitted) -> None:
        """A pending refund (live) succeeds: refund.updated."""
        if refund["status"] != "pending":
            raise ValueError(f"refund {refund['id']} is {refund['status']}, not pending")
        previous = {"status": refund["status"]}
        refund["status"] = "succeeded"
        events.append(self._events.emit("refund.updated", refund, previous=previous))

    def fail(self, refund: dict[str, Any], reason: str, events: Emitted) -> None:
        """A refund (live) fails, as a closed card's does: the money comes back to the
        balance and off the charge's amount refunded; refund.updated and refund.failed."""
        if refund["status"] not in ("pending", "succeeded"):
            raise ValueError(f"refund {refund['id']} is {refund['status']}")
        charge = self._store.get(refund["charge"])
        txn = self._balance.record(
            amount=refund["amount"],
            fee=0,
            currency=refund["currency"],
            source=refund["id"],
            type="refund_failure",
            category="refund_failure",
        )
        previous = {"status": refund["status"]}
        refund["status"] = "failed"
        refund["failure_reason"] = reason
        refund["failure_balance_transaction"] = txn["id"]
        charge["amount_refunded"] -= refund["amount"]
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        events.append(self._events.emit("refund.updated", refund, previous=previous))
        events.append(self._events.emit("refund.failed", refund))

    def create(
        self, params: dict[str, Any], events: Emitted, request: RequestRef
    ) -> dict[str, Any]:
        """`POST /v1/refunds` (of `payment_intent` or `charge`)."""
        check_unknown(
            params, {"payment_intent", "charge", "amount", "metadata", "reason", "expand"}
        )
        charge = self._find_charge(params)
        amount = int_param(params["amount"], "amount", minimum=1) if "amount" in params else None
        reason = str_param(params, "reason")
        if reason not in (None, "duplicate", "fraudulent", "requested_by_customer"):
            raise ApiError(400, f"Invalid reason: {reason}", param="reason")
        metadata = metadata_param(params.get("metadata"))
        refund = self.refund(charge, amount, metadata, reason, events, request)
        return snapshot(refund)

    def refund_by_id(
        self, charge_or_pi: str, amount: int | None, reason: str | None, events: Emitted
    ) -> dict[str, Any]:
        """A refund from the Dashboard, of a charge or a PaymentIntent's charge."""
        key = "payment_intent" if charge_or_pi.startswith("pi_") else "charge"
        return self.refund(self._find_charge({key: charge_or_pi}), amount, {}, reason, events, None)

    def _find_charge(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("charge"):
            return self._store.fetch(params["charge"], "charge", "charge")
        pi_id = params.get("payment_intent")
        if not pi_id:
            raise ApiError(
                400,
                "One of the following params should be provided for this "
                "request: payment_intent or charge.",
                code="parameter_missing",
                param="payment_intent",
            )
        pi = self._store.fetch(pi_id, "payment_intent", "payment_intent")
        if pi["status"] != "succeeded" or not pi.get("latest_charge"):
            raise ApiError(
                400,
                f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        return self._store.get(pi["latest_charge"])

    def refund(
        self,
        charge: dict[str, Any],
        amount: int | None,
        metadata: dict[str, str],
        reason: str | None,
        events: Emitted,
        request: RequestRef,
    ) -> dict[str, Any]:
        """Refund `amount` (default: what is left) of `charge` (charge.refunded)."""
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise ApiError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
                param="charge",
            )
        if amount is None:
            amount = remaining
        if amount > remaining:
            raise ApiError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount "
                f"on charge ({remaining})",
                code="amount_too_large",
                param="amount",
            )
        refund_id = objects.new_id("re_")
        txn = self._balance.record(
            amount=-amount,
            fee=0,
            currency=charge["currency"],
            source=refund_id,
            type="refund",
            category="refund",
        )
        refund = self._store.add(
            objects.refund(
                refund_id=refund_id,
                amount=amount,
                balance_transaction=txn["id"],
                charge=charge,
                metadata=metadata,
                reason=reason,
                status="pending" if self.pending else "succeeded",
            )
        )
        previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        events.append(
            self._events.emit("charge.refunded", charge, previous=previous, request=request)
        )
        events.append(self._events.emit("refund.created", refund, request=request))
        return refund


class Disputes:
    """Chargebacks: a dispute withdraws the amount and a fee; won, both come back."""

    def __init__(self, store: ObjectStore, balance: Balance, events: EventLog, *, fee: int) -> None:
        self._store = store
        self._balance = balance
        self._events = events
        self._fee = fee

    def open(
        self,
        charge_id: str,
        *,
        amount: int | None,
        reason: str,
        outcome: str | None,
        events: Emitted,
    ) -> dict[str, Any]:
        """The cardholder disputes the charge (charge.dispute.created), and with `outcome`
        the dispute is closed at once."""
        charge = self._store.fetch(charge_id, "charge", "charge")
        amount = charge["amount"] if amount is None else amount
        dispute_id = objects.new_id("dp_")
        txn = self._balance.record(
            amount=-amount,
            fee=self._fee,
            currency=charge["currency"],
            source=dispute_id,
            type="adjustment",
            category="dispute",
            description=f"Chargeback withdrawal for {charge_id}",
        )
        dispute = self._store.add(
            objects.dispute(
                dispute_id=dispute_id,
                amount=amount,
                balance_transaction=snapshot(txn),
                charge=charge,
                reason=reason,
            )
        )
        charge["disputed"] = True
        events.append(self._events.emit("charge.dispute.created", dispute))
        if outcome is not None:
            self.close(dispute, outcome, events)
        return dispute

    def close(self, dispute: dict[str, Any], outcome: str, events: Emitted) -> None:
        """Close `dispute` (live) as "won" or "lost" (charge.dispute.closed)."""
        if outcome not in ("won", "lost"):
            raise ValueError("outcome is 'won' or 'lost'")
        if dispute["status"] in ("won", "lost"):
            raise ValueError(f"dispute {dispute['id']} is already closed")
        previous = {"status": dispute["status"]}
        dispute["status"] = outcome
        if outcome == "won":
            txn = self._balance.record(
                amount=dispute["amount"],
                fee=-self._fee,
                currency=dispute["currency"],
                source=dispute["id"],
                type="adjustment",
                category="dispute_reversal",
                description=f"Chargeback reversal for {dispute['charge']}",
            )
            dispute["balance_transactions"].append(snapshot(txn))
        events.append(self._events.emit("charge.dispute.closed", dispute, previous=previous))
