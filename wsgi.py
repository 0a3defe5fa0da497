"""WSGI entry point: `gunicorn wsgi:app`."""

from premium_billing import create_app

app = create_app()
