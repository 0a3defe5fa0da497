"""POST /webhooks/stripe: verify the signature on the raw body, then store and process.

A plain Flask blueprint outside /api/v1 (no bearer key: the signature is the credential).
The view only verifies and hands over: the inbox stores and dispatches (`webhooks.inbox`).
Answers: 200 processed, ignored, duplicate or failed (stored: our retry job owns it), or
queued when WEBHOOK_PROCESSING=deferred (a drain thread posts it);
400 when the signature does not verify or the JSON nests too deep (nothing stored); 413
when the body passes WEBHOOK_MAX_LENGTH (refused as it is read, nothing stored); 503 when no
secret is set.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, jsonify, request

from premium_billing.http.limits import body_limit
from premium_billing.http.problems import problem
from premium_billing.http.session import database
from premium_billing.stripe_billing.gateway import WebhookSignatureError, verify_webhook

from . import metrics
from .drain import notify
from .inbox import enqueue, receive

log = logging.getLogger(__name__)

bp = Blueprint("stripe_webhooks", __name__, url_prefix="/webhooks")


@bp.post("/stripe")
@body_limit("webhook_max_length")  # Stripe events are far smaller than 1 MB
def stripe_webhook() -> Response | tuple[Response, int]:
    settings = current_app.config["SETTINGS"]
    secrets = settings.stripe_webhook_secrets
    if not secrets:
        return problem(503, "Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET).")
    # At most WEBHOOK_MAX_LENGTH bytes, enforced while reading (chunked bodies too): more is
    # a 413 before the signature is checked or anything stored (premium_billing.http.limits).
    payload = request.get_data(cache=False)
    try:
        event = verify_webhook(
            payload,
            request.headers.get("Stripe-Signature"),
            secrets,
            tolerance=settings.stripe_webhook_tolerance,
        )
    except WebhookSignatureError as error:
        log.info("webhook rejected", extra={"event": "webhook_rejected", "reason": error.reason})
        return problem(400, f"Stripe signature verification failed: {error.reason}.")
    if not isinstance(event.get("id"), str) or not event["id"]:
        return problem(400, "The event has no id.")
    if settings.webhook_processing == "deferred":
        outcome = enqueue(database(), settings, event, payload)
        if settings.webhook_drain_in_api:
            notify(database(), settings)
    else:
        outcome = receive(database(), settings, event, payload)
    metrics.answered(outcome.status)
    return jsonify({"received": True, "status": outcome.status})
