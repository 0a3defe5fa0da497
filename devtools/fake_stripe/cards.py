"""Stripe's test cards and test PaymentMethods, and how each one behaves.

Checkout (`card=`): 4242424242424242 succeeds; 4000000000000002 declines (generic_decline);
4000000000009995 declines (insufficient_funds); 4000000000000069 declines (expired_card).
Saved in setup mode, 4000000000000341 attaches but every later charge is declined, and
4000002760003184 needs authentication (off-session charges fail with
authentication_required).  Off-session PaymentIntents also accept Stripe's test
PaymentMethods `pm_card_visa`, `pm_card_chargeDeclined`,
`pm_card_chargeDeclinedInsufficientFunds`, `pm_card_chargeCustomerFail`,
`pm_card_authenticationRequired`."""

from __future__ import annotations

from typing import NamedTuple

DEFAULT_CARD = "4242424242424242"
_ATTACHES_THEN_DECLINES = "4000000000000341"


class Decline(NamedTuple):
    """Why a card is declined: Stripe's error `code`, `decline_code` and message."""

    code: str
    decline_code: str
    message: str


_GENERIC = Decline("card_declined", "generic_decline", "Your card was declined.")
_INSUFFICIENT_FUNDS = Decline(
    "card_declined", "insufficient_funds", "Your card has insufficient funds."
)

# card number -> decline when paying in Checkout
_CHECKOUT_DECLINES: dict[str, Decline] = {
    "4000000000000002": _GENERIC,
    "4000000000009995": _INSUFFICIENT_FUNDS,
    "4000000000000069": Decline("expired_card", "expired_card", "Your card has expired."),
    _ATTACHES_THEN_DECLINES: _GENERIC,
}
# card number -> decline of later off-session charges of the saved card
_SAVED_CARD_DECLINES: dict[str, Decline] = {
    _ATTACHES_THEN_DECLINES: _GENERIC,
    "4000000000009995": _INSUFFICIENT_FUNDS,
    "4000002760003184": Decline(
        "authentication_required",
        "authentication_required",
        "Your card was declined. This transaction requires authentication.",
    ),
}
# Stripe's test PaymentMethod tokens -> card number they stand for
TEST_PAYMENT_METHODS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeCustomerFail": _ATTACHES_THEN_DECLINES,
    "pm_card_authenticationRequired": "4000002760003184",
}


def checkout_decline(card: str, mode: str) -> Decline | None:
    """The decline of `card` entered on the Checkout page of a session in `mode`."""
    if mode == "setup" and card == _ATTACHES_THEN_DECLINES:
        return None  # attaching succeeds; later charges fail
    return _CHECKOUT_DECLINES.get(card)


def charge_decline(card: str) -> Decline | None:
    """The decline of later charges of `card` once it is saved as a PaymentMethod."""
    return _SAVED_CARD_DECLINES.get(card)
