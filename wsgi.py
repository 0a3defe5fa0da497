"""WSGI entry point: `gunicorn wsgi:app`."""

from premium_billing import create_app
from premium_billing.logging_setup import configure_logging

configure_logging()
app = create_app()
