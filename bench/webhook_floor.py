"""The floor of bench-webhooks: verify the Stripe signature on the raw body, insert the raw
event (unique event id), answer 200. No posting: what any webhook endpoint must pay."""

from __future__ import annotations

import os

from flask import Flask, request
from sqlalchemy import create_engine, text

from premium_billing.db.engine import normalize_url
from premium_billing.stripe_billing.gateway import WebhookSignatureError, verify_webhook

app = Flask(__name__)
engine = create_engine(normalize_url(os.environ["DATABASE_URL"]), pool_size=5)
SECRETS = [s for s in os.environ["STRIPE_WEBHOOK_SECRET"].split(",") if s]
INSERT = text(
    "INSERT INTO floor_events (event_id, type, payload) VALUES (:id, :type, :payload) "
    "ON CONFLICT (event_id) DO NOTHING"
)


@app.post("/webhooks/stripe")
def stripe_webhook() -> tuple[str, int]:
    payload = request.get_data()
    try:
        event = verify_webhook(payload, request.headers.get("Stripe-Signature"), SECRETS)
    except WebhookSignatureError:
        return "bad signature", 400
    with engine.begin() as conn:
        conn.execute(INSERT, {"id": event["id"], "type": event["type"],
                              "payload": payload.decode()})  # fmt: skip
    return '{"received": true}', 200
