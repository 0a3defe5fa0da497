"""Refunds: /api/v1/refunds (money going back to payers) and marking one paid."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from premium_billing.http.auth import roles
from premium_billing.http.dates import BusinessDate
from premium_billing.http.ids import PublicId, path_id
from premium_billing.http.pagination import paginate
from premium_billing.http.schemas import ListArgs, ListMeta, String
from premium_billing.http.session import db_session
from premium_billing.payments import refunds as service
from premium_billing.payments.models import (
    REFUND_CHANNELS,
    REFUND_KINDS,
    REFUND_STATUSES,
    Refund,
)

blp = Blueprint(
    "refunds", __name__, url_prefix="/api/v1/refunds", description="Refunds (money going back)"
)


class RefundFilters(ListArgs):
    status = String(load_default=None, validate=validate.OneOf(REFUND_STATUSES))
    policyholder_id = PublicId("policyholder", load_default=None)
    payment_id = PublicId("payment", load_default=None)
    channel = String(load_default=None, validate=validate.OneOf(REFUND_CHANNELS))


class RefundOut(Schema):
    id = PublicId("refund")
    amount = fields.Integer()
    currency = fields.String()
    policyholder_id = PublicId("policyholder", allow_none=True)
    payment_id = PublicId("payment")
    reason = fields.String(
        validate=validate.OneOf(REFUND_KINDS),
        metadata={"description": "Why: a cancellation's settlement, an overpayment, by hand."},
    )
    description = fields.String(allow_none=True)
    channel = fields.String(
        validate=validate.OneOf(REFUND_CHANNELS),
        metadata={"description": "How it is paid: back through Stripe, by check or transfer."},
    )
    status = fields.String(validate=validate.OneOf(REFUND_STATUSES))
    created_at = fields.DateTime(format="iso")
    paid_on = fields.Date(allow_none=True)
    method = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)
    stripe_refund_id = fields.String(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    cancelled_on = fields.Date(allow_none=True)


class RefundList(ListMeta):
    data = fields.List(fields.Nested(RefundOut))


class MarkPaidIn(Schema):
    method = String(required=True, validate=validate.OneOf(service.MARK_PAID_METHODS))
    reference = String(load_default=None, column=Refund.paid_reference)
    paid_on = BusinessDate(
        ahead=False,
        load_default=None,
        metadata={"description": "The day it was paid (default: the business date)."},
    )


def refund_out(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "amount": refund.amount,
        "currency": refund.currency,
        "policyholder_id": refund.policyholder_id,
        "payment_id": refund.payment_id,
        "reason": refund.kind,
        "description": refund.reason,
        "channel": refund.channel,
        "status": refund.status,
        "created_at": refund.created_at,
        "paid_on": refund.paid_on,
        "method": refund.paid_method,
        "reference": refund.paid_reference,
        "stripe_refund_id": refund.stripe_refund_id,
        "failure_reason": refund.failure_reason,
        "cancelled_on": refund.cancelled_on,
    }


@blp.route("")
class Refunds(MethodView):
    @roles("finance")
    @blp.arguments(RefundFilters, location="query")
    @blp.response(200, RefundList)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List refunds, filtered by status, policyholder, payment or channel (cursor
        pagination): `pending` ones are owed, `failed` ones Stripe could not pay."""
        stmt = select(Refund)
        for name in ("status", "policyholder_id", "payment_id", "channel"):
            if args.get(name) is not None:
                stmt = stmt.where(getattr(Refund, name) == args[name])
        rows, has_more = paginate(db_session(), stmt, Refund.id, "refund", args)
        return {"data": [refund_out(r) for r in rows], "has_more": has_more}


@blp.route("/<refund_id>")
class RefundById(MethodView):
    @roles("finance")
    @blp.response(200, RefundOut)
    def get(self, refund_id: str) -> dict[str, Any]:
        """A refund."""
        return refund_out(service.get_refund(db_session(), path_id("refund", refund_id)))


@blp.route("/<refund_id>/mark-paid")
class RefundMarkPaid(MethodView):
    @roles("finance")
    @blp.arguments(MarkPaidIn)
    @blp.response(200, RefundOut)
    def post(self, data: dict[str, Any], refund_id: str) -> dict[str, Any]:
        """Mark a refund paid outside Stripe (by check or transfer): refunds payable → the
        bank. A refund Stripe pays is marked by its webhook (409) unless Stripe failed it."""
        refund = service.mark_paid(
            db_session(),
            current_app.config["SETTINGS"],
            path_id("refund", refund_id),
            method=data["method"],
            reference=data.get("reference"),
            paid_on=data.get("paid_on"),
        )
        return refund_out(refund)
