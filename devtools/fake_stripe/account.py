"""One fake Stripe account: its object store and the resources working on it, wired
together."""

from __future__ import annotations

from collections.abc import Callable

from .checkout_sessions import CheckoutSessions
from .resources import (
    Balance,
    Customers,
    Disputes,
    EventLog,
    PaymentIntents,
    PaymentMethods,
    Refunds,
)
from .store import ObjectStore


class Account:
    def __init__(
        self,
        *,
        base_url: Callable[[], str],
        pending_webhooks: Callable[[], int],
        fee_basis_points: int,
        fee_fixed: int,
        dispute_fee: int,
    ) -> None:
        """`base_url`: where the fake serves (Checkout page links); `pending_webhooks`: the
        count of endpoints a new event is to be sent to."""
        self.store = ObjectStore()
        self.events = EventLog(self.store, pending_webhooks)
        self.customers = Customers(self.store)
        self.balance = Balance(
            self.store, self.events, fee_basis_points=fee_basis_points, fee_fixed=fee_fixed
        )
        self.payment_methods = PaymentMethods(self.store)
        self.payment_intents = PaymentIntents(
            self.store, self.payment_methods, self.balance, self.events
        )
        self.refunds = Refunds(self.store, self.balance, self.events)
        self.disputes = Disputes(self.store, self.balance, self.events, fee=dispute_fee)
        self.checkout_sessions = CheckoutSessions(
            self.store, self.payment_methods, self.payment_intents, self.events, base_url=base_url
        )
