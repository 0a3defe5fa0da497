"""Webhook endpoints, registered by admins: create (the secret made here and shown once),
list, delete; an endpoint's deliveries; an event delivered again."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from premium_billing.db.types import utcnow
from premium_billing.errors import NotFound, Unprocessable

from .models import EventDelivery, OutboundEvent, WebhookEndpoint, WebhookSubscription
from .outbox import fan_out
from .rules import event_types_problem, url_problem

SECRET_BYTES = 24


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def create_endpoint(session: Session, url: str, events: Sequence[str]) -> WebhookEndpoint:
    """Register `url` for `events` (each type once); commits."""
    types = list(dict.fromkeys(events))
    for name, problem in (("url", url_problem(url)), ("events", event_types_problem(types))):
        if problem:
            raise Unprocessable(problem, field=name)
    endpoint = WebhookEndpoint(url=url, events=types, secret=new_secret(), status="enabled")
    session.add(endpoint)
    session.flush()
    session.add_all(WebhookSubscription(endpoint_id=endpoint.id, event_type=t) for t in types)
    session.commit()
    return endpoint


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.deleted_at is not None:
        raise NotFound(f"webhook endpoint we_{endpoint_id} not found")
    return endpoint


def delete_endpoint(session: Session, endpoint_id: int) -> None:
    """No more deliveries to it; its log is kept. Commits."""
    endpoint = get_endpoint(session, endpoint_id)
    endpoint.deleted_at = utcnow()
    session.execute(
        update(EventDelivery)
        .where(EventDelivery.endpoint_id == endpoint_id, EventDelivery.status == "pending")
        .values(status="failed", next_attempt_at=None, updated_at=utcnow())
    )
    session.commit()


def redeliver(session: Session, event_id: int) -> list[EventDelivery]:
    """Deliver the event again to every enabled endpoint subscribed to it (those it was
    delivered to, or failed, included; one being sent now is left to its sender);
    commits. Its deliveries."""
    event = session.get(OutboundEvent, event_id)
    if event is None:
        raise NotFound(f"event evt_{event_id} not found")
    now = utcnow()
    enabled = select(WebhookEndpoint.id).where(
        WebhookEndpoint.status == "enabled", WebhookEndpoint.deleted_at.is_(None)
    )
    session.execute(
        update(EventDelivery)
        .where(
            EventDelivery.event_id == event_id,
            EventDelivery.endpoint_id.in_(enabled),
            EventDelivery.claimed_until.is_(None) | (EventDelivery.claimed_until < now),
        )
        .values(status="pending", next_attempt_at=now, claimed_until=None, updated_at=now)
    )
    fan_out(session, [event_id])
    session.commit()
    return list(
        session.scalars(
            select(EventDelivery)
            .where(EventDelivery.event_id == event_id)
            .order_by(EventDelivery.id)
        )
    )


def delivery_out(delivery: EventDelivery, event: OutboundEvent | None = None) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "event_type": event.type if event is not None else None,
        "endpoint_id": delivery.endpoint_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": delivery.next_attempt_at,
        "delivered_at": delivery.delivered_at,
    }
