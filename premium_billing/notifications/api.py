"""Notices by email: GET /api/v1/notifications (queued, sent, failed)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from premium_billing.http.auth import roles
from premium_billing.http.ids import PublicId
from premium_billing.http.pagination import paginate
from premium_billing.http.schemas import ListArgs, ListMeta, String
from premium_billing.http.session import db_session

from .models import Notification
from .rules import KINDS, STATUSES

blp = Blueprint(
    "notifications",
    __name__,
    url_prefix="/api/v1/notifications",
    description="Notices to policyholders by email",
)


class NotificationFilters(ListArgs):
    policyholder_id = PublicId("policyholder", load_default=None)
    kind = String(load_default=None, validate=validate.OneOf(KINDS))
    status = String(load_default=None, validate=validate.OneOf(STATUSES))


class NotificationOut(Schema):
    id = PublicId("notification")
    kind = fields.String(validate=validate.OneOf(KINDS))
    policyholder_id = PublicId("policyholder")
    policy_id = PublicId("policy", allow_none=True)
    invoice_id = PublicId("invoice", allow_none=True)
    status = fields.String(
        validate=validate.OneOf(STATUSES),
        metadata={"description": "queued (to send, or to retry), sent, failed (gave up)."},
    )
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(format="iso", allow_none=True)
    subject = fields.String(allow_none=True)
    message_id = fields.String(allow_none=True)
    last_error = fields.String(allow_none=True)
    sent_at = fields.DateTime(format="iso", allow_none=True)
    created_at = fields.DateTime(format="iso")


class NotificationList(ListMeta):
    data = fields.List(fields.Nested(NotificationOut))


def notification_out(row: Notification) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "policyholder_id": row.policyholder_id,
        "policy_id": row.policy_id,
        "invoice_id": row.invoice_id,
        "status": row.status,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at if row.status == "queued" else None,
        "subject": row.subject,
        "message_id": row.message_id,
        "last_error": row.last_error,
        "sent_at": row.sent_at,
        "created_at": row.created_at,
    }


@blp.route("")
class Notifications(MethodView):
    @roles("billing")
    @blp.arguments(NotificationFilters, location="query")
    @blp.response(200, NotificationList)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Emails queued, sent and failed, filtered by policyholder, kind or status."""
        stmt = select(Notification)
        for name in ("policyholder_id", "kind", "status"):
            if args.get(name) is not None:
                stmt = stmt.where(getattr(Notification, name) == args[name])
        rows, has_more = paginate(db_session(), stmt, Notification.id, "notification", args)
        return {"data": [notification_out(r) for r in rows], "has_more": has_more}
