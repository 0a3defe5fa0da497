"""Notices to policyholders by email: an outbox row per notice, written in the business
event's transaction (`outbox.py`), rendered from Jinja templates (`render.py`) and sent over
SMTP by the sender (`sender.py`, `premium-billing send-notifications`)."""
