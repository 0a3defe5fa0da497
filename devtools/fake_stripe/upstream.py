"""What the fake takes from the service it stands in for: the only module here that imports
`premium_billing`.

The API version the service pins (the fake answers and signs events with it), the webhook
signature the service verifies (the fake signs with the same function), and the currency
exponents (the currencies the fake accepts, and how the Checkout page shows an amount)."""

from premium_billing.money import CURRENCY_EXPONENTS
from premium_billing.stripe_billing.gateway import STRIPE_API_VERSION, sign_webhook

__all__ = ["CURRENCY_EXPONENTS", "STRIPE_API_VERSION", "sign_webhook"]
