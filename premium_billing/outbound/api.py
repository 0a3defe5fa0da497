"""Outbound events: /api/v1/webhook-endpoints (admins register the insurer's URLs) and
/api/v1/events/{id}/redeliver."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate
from sqlalchemy import select

from premium_billing.http.auth import roles
from premium_billing.http.ids import PublicId, path_id
from premium_billing.http.pagination import paginate
from premium_billing.http.schemas import ListArgs, ListMeta, String
from premium_billing.http.session import db_session

from . import endpoints as service
from .models import DeliveryAttempt, EventDelivery, OutboundEvent, WebhookEndpoint
from .rules import DELIVERY_STATUSES, ENDPOINT_STATUSES, EVENT_TYPES, url_problem


def _url(value: str) -> None:
    problem = url_problem(value)
    if problem:
        raise ValidationError(problem)


blp = Blueprint(
    "webhook_endpoints",
    __name__,
    url_prefix="/api/v1",
    description="Outbound events to the insurer's systems (Standard Webhooks signatures)",
)


class EndpointIn(Schema):
    url = String(required=True, column=WebhookEndpoint.url, validate=_url)
    events = fields.List(
        String(validate=validate.OneOf(EVENT_TYPES), max_length=50),
        required=True,
        validate=validate.Length(min=1, max=len(EVENT_TYPES) * 2),
        metadata={"description": f"Event types: {', '.join(EVENT_TYPES)}."},
    )


class EndpointOut(Schema):
    id = PublicId("webhook_endpoint")
    url = fields.String()
    events = fields.List(fields.String())
    status = fields.String(
        validate=validate.OneOf(ENDPOINT_STATUSES),
        metadata={"description": "`disabled` after OUTBOUND_DISABLE_AFTER_DAYS of failures."},
    )
    failing_since = fields.DateTime(format="iso", allow_none=True)
    disabled_at = fields.DateTime(format="iso", allow_none=True)
    created_at = fields.DateTime(format="iso")


class EndpointCreated(EndpointOut):
    secret = fields.String(
        metadata={"description": "The signing secret (`whsec_…`): shown this once only."}
    )


class EndpointList(ListMeta):
    data = fields.List(fields.Nested(EndpointOut))


class AttemptOut(Schema):
    attempted_at = fields.DateTime(format="iso")
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()


class DeliveryOut(Schema):
    id = PublicId("delivery")
    event_id = PublicId("event")
    event_type = fields.String(allow_none=True)
    endpoint_id = PublicId("webhook_endpoint")
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(format="iso", allow_none=True)
    delivered_at = fields.DateTime(format="iso", allow_none=True)
    log = fields.List(fields.Nested(AttemptOut), metadata={"description": "Every attempt."})


class DeliveryList(ListMeta):
    data = fields.List(fields.Nested(DeliveryOut))


class DeliveryFilters(ListArgs):
    status = String(load_default=None, validate=validate.OneOf(DELIVERY_STATUSES))


class RedeliveryOut(Schema):
    event_id = PublicId("event")
    data = fields.List(fields.Nested(DeliveryOut))


def endpoint_out(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": endpoint.events,
        "status": endpoint.status,
        "failing_since": endpoint.failing_since,
        "disabled_at": endpoint.disabled_at,
        "created_at": endpoint.created_at,
    }


def deliveries_out(deliveries: list[EventDelivery]) -> list[dict[str, Any]]:
    """The deliveries with their event's type and their log (two queries for the page)."""
    session = db_session()
    ids = [d.id for d in deliveries]
    logs: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    types: dict[int, str] = {}
    if ids:
        for a in session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id.in_(ids))
            .order_by(DeliveryAttempt.id)
        ):
            logs[a.delivery_id].append(
                {
                    "attempted_at": a.attempted_at,
                    "status_code": a.status_code,
                    "error": a.error,
                    "duration_ms": a.duration_ms,
                }
            )
        types = dict(
            session.execute(
                select(OutboundEvent.id, OutboundEvent.type).where(
                    OutboundEvent.id.in_({d.event_id for d in deliveries})
                )
            ).all()
        )
    return [
        {**service.delivery_out(d), "event_type": types.get(d.event_id), "log": logs[d.id]}
        for d in deliveries
    ]


@blp.route("/webhook-endpoints")
class Endpoints(MethodView):
    @roles("admin")
    @blp.arguments(EndpointIn)
    @blp.response(201, EndpointCreated)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Register an endpoint for some event types. The answer carries its signing
        secret, shown this once: verify each request with it (Standard Webhooks)."""
        endpoint = service.create_endpoint(db_session(), data["url"], data["events"])
        return {**endpoint_out(endpoint), "secret": endpoint.secret}

    @roles("admin")
    @blp.arguments(ListArgs, location="query")
    @blp.response(200, EndpointList)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The registered endpoints (not their secrets)."""
        stmt = select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))
        rows, has_more = paginate(db_session(), stmt, WebhookEndpoint.id, "webhook_endpoint", args)
        return {"data": [endpoint_out(e) for e in rows], "has_more": has_more}


@blp.route("/webhook-endpoints/<endpoint_id>")
class EndpointById(MethodView):
    @roles("admin")
    @blp.response(204)
    def delete(self, endpoint_id: str) -> None:
        """Delete an endpoint: nothing more is sent to it (its log is kept)."""
        service.delete_endpoint(db_session(), path_id("webhook_endpoint", endpoint_id))


@blp.route("/webhook-endpoints/<endpoint_id>/deliveries")
class EndpointDeliveries(MethodView):
    @roles("admin")
    @blp.arguments(DeliveryFilters, location="query")
    @blp.response(200, DeliveryList)
    def get(self, args: dict[str, Any], endpoint_id: str) -> dict[str, Any]:
        """The events sent (or to send) to an endpoint, each with the log of its attempts."""
        session = db_session()
        endpoint = service.get_endpoint(session, path_id("webhook_endpoint", endpoint_id))
        stmt = select(EventDelivery).where(EventDelivery.endpoint_id == endpoint.id)
        if args.get("status"):
            stmt = stmt.where(EventDelivery.status == args["status"])
        rows, has_more = paginate(session, stmt, EventDelivery.id, "delivery", args)
        return {"data": deliveries_out(rows), "has_more": has_more}


@blp.route("/events/<event_id>/redeliver")
class Redeliver(MethodView):
    @roles("admin")
    @blp.response(200, RedeliveryOut)
    def post(self, event_id: str) -> dict[str, Any]:
        """Send an event again to every enabled endpoint subscribed to its type (the
        sender delivers it on its next pass, signed anew, with the same `webhook-id`)."""
        number = path_id("event", event_id)
        deliveries = service.redeliver(db_session(), number)
        return {"event_id": number, "data": deliveries_out(deliveries)}
