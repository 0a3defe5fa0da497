"""Outbound events to the insurer's systems: endpoints registered by admins
(`endpoints.py`), an event row per business event with a delivery per subscribed endpoint
(`outbox.py`), delivered signed per the Standard Webhooks spec with retries and a log of
every attempt (`sender.py`)."""
