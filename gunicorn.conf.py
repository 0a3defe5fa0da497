"""Read by gunicorn itself when started from the checkout (`gunicorn wsgi:app`): the API's
hooks, the same `premium-billing serve` passes (premium_billing/gunicorn_config.py)."""

from premium_billing.gunicorn_config import child_exit, on_exit, on_starting  # noqa: F401
