"""Stripe's published fixtures (tests/fixtures/stripe/) made into events and delivered to
the signed endpoint as Stripe delivers them: the object as Stripe publishes it, only the
fields a scenario needs changed, in Stripe's Event envelope, signed with
`gateway.sign_webhook`, posted over real HTTP; then the inbox row once it has settled
(inline at once, deferred once the drain has had it)."""

from __future__ import annotations

import copy
import itertools
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import requests

from premium_billing.stripe_billing.gateway import STRIPE_API_VERSION, sign_webhook
from premium_billing.stripe_billing.models import StripeEvent

from .stripe_helpers import WEBHOOK_SECRET, inbox

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe"
_serial = itertools.count(1)


@cache
def _published(resource: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{resource}.json").read_text()))


def stripe_object(resource: str, **changes: Any) -> dict[str, Any]:
    """Stripe's published `resource` (e.g. "charge", "checkout.session") with `changes`
    (top-level fields) applied; a fresh id unless `id` is among them."""
    obj = copy.deepcopy(_published(resource))
    prefix = str(obj["id"]).rsplit("_", 1)[0]
    obj["id"] = f"{prefix}_fx{next(_serial)}{time.monotonic_ns() % 10**9}"
    obj.update(changes)
    return obj


def stripe_event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The Event envelope Stripe sends (from its published `event`) around `obj`."""
    event = copy.deepcopy(_published("event"))
    event.update(
        id=f"evt_fx{next(_serial)}{time.monotonic_ns() % 10**9}",
        api_version=STRIPE_API_VERSION,
        created=int(time.time()),
        data={"object": obj},
        livemode=False,
        pending_webhooks=1,
        request={"id": None, "idempotency_key": None},
        type=event_type,
    )
    return event


def deliver(base_url: str, event: dict[str, Any]) -> dict[str, Any]:
    """POST `event` signed as Stripe signs it; the endpoint's answer (never a 5xx)."""
    body = json.dumps(event, indent=2).encode()
    response = requests.post(
        f"{base_url}/webhooks/stripe",
        data=body,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign_webhook(body, WEBHOOK_SECRET, int(time.time())),
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def settled(db: Any, event_id: str, timeout: float = 20.0) -> StripeEvent:
    """The inbox row of `event_id` once no longer queued (the drain had it)."""
    deadline = time.monotonic() + timeout
    while True:
        row = next((r for r in inbox(db) if r.event_id == event_id), None)
        if row is not None and row.status != "queued":
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"event {event_id} still {row and row.status}")
        time.sleep(0.05)


def replay(base_url: str, db: Any, event_type: str, obj: dict[str, Any]) -> StripeEvent:
    """Deliver `obj` as a `event_type` event; its inbox row once settled. Inline it answers
    what it did; deferred, `queued`."""
    event = stripe_event(event_type, obj)
    answered = deliver(base_url, event)["status"]
    row = settled(db, event["id"])
    assert answered in ("queued", row.status), (answered, row.status)
    return row
