"""Payments: /api/v1/payments, refunds. (Matching a payment by hand and undoing a match,
POST/DELETE /payments/{id}/allocations, are reconciliation's: `reconciliation.api`.)"""

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
from premium_billing.http.schemas import Currency, ListArgs, ListMeta, Money
from premium_billing.http.session import db_session
from premium_billing.payments import posting as service
from premium_billing.payments import refunds
from premium_billing.payments.models import PAYMENT_METHODS, PAYMENT_STATUSES, Payment

blp = Blueprint("payments", __name__, url_prefix="/api/v1/payments", description="Payments")


class PositiveMoney(Money):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Range(min=1, max=10**15))
        super().__init__(**kwargs)


class PaymentCreate(Schema):
    amount = PositiveMoney(required=True)
    currency = Currency(required=True)
    method = fields.String(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    received_on = BusinessDate(ahead=False, required=True)
    reference = fields.String(load_default=None, validate=validate.Length(max=500))
    payer_name = fields.String(load_default=None, validate=validate.Length(max=200))
    external_id = fields.String(load_default=None, validate=validate.Length(min=1, max=255))
    policyholder_id = PublicId(
        "policyholder",
        load_default=None,
        metadata={"description": "The payer, when known: what is not allocated is their credit."},
    )


class PaymentFilters(ListArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(PAYMENT_STATUSES))
    policyholder_id = PublicId("policyholder", load_default=None)


class PaymentAllocationOut(Schema):
    invoice_id = PublicId("invoice")
    amount = fields.Integer()


class PaymentMatchOut(Schema):
    rule = fields.String()
    evidence = fields.Dict(allow_none=True)


class PaymentRefundOut(Schema):
    id = fields.String()
    amount = fields.Integer()
    status = fields.String()
    reason = fields.String(allow_none=True)
    kind = fields.String()
    channel = fields.String()
    created_at = fields.DateTime(format="iso")


class PaymentOut(Schema):
    id = PublicId("payment")
    amount = fields.Integer()
    currency = fields.String()
    method = fields.String()
    source = fields.String()
    external_id = fields.String(allow_none=True)
    received_on = fields.Date()
    payer_name = fields.String(allow_none=True)
    reference = fields.String(allow_none=True)
    policyholder_id = PublicId("policyholder", allow_none=True)
    status = fields.String()
    amount_unapplied = fields.Integer()
    amount_allocated = fields.Integer()
    amount_refunded = fields.Integer()
    amount_reversed = fields.Integer()
    allocations = fields.List(fields.Nested(PaymentAllocationOut))
    match = fields.Nested(PaymentMatchOut, allow_none=True)
    refunds = fields.List(fields.Nested(PaymentRefundOut))
    created_at = fields.DateTime(format="iso")


class PaymentList(ListMeta):
    data = fields.List(fields.Nested(PaymentOut))


class RefundIn(Schema):
    amount = PositiveMoney(required=True)
    reason = fields.String(load_default=None, validate=validate.Length(max=2000))


def _settings():  # type: ignore[no-untyped-def]
    return current_app.config["SETTINGS"]


def payments_out(payments: list[Payment]) -> list[dict[str, Any]]:
    """A page of payments as the API shows them (a bounded number of queries)."""
    seen = service.views(db_session(), payments)
    return [payment_out(p, seen[p.id]) for p in payments]


def payment_out(payment: Payment, seen: service.PaymentView | None = None) -> dict[str, Any]:
    seen = seen or service.view(db_session(), payment)
    match = None
    if payment.match_rule:
        match = {"rule": payment.match_rule, "evidence": payment.match_evidence}
    return {
        "id": payment.id,
        "amount": payment.amount,
        "currency": payment.currency,
        "method": payment.method,
        "source": payment.source,
        "external_id": payment.external_id,
        "received_on": payment.received_on,
        "payer_name": payment.payer_name,
        "reference": payment.reference,
        "policyholder_id": payment.policyholder_id,
        "status": payment.status,
        "amount_unapplied": payment.amount_unapplied,
        "amount_allocated": payment.amount_allocated,
        "amount_refunded": payment.amount_refunded,
        "amount_reversed": payment.amount_reversed,
        "allocations": seen.allocations,
        "match": match,
        "refunds": [
            {
                "id": f"re_{r.id}",
                "amount": r.amount,
                "status": r.status,
                "reason": r.reason,
                "kind": r.kind,
                "channel": r.channel,
                "created_at": r.created_at,
            }
            for r in seen.refunds
        ],
        "created_at": payment.created_at,
    }


@blp.route("")
class Payments(MethodView):
    @roles("finance")
    @blp.arguments(PaymentFilters, location="query")
    @blp.response(200, PaymentList)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List payments, filtered by status or policyholder (cursor pagination)."""
        stmt = select(Payment)
        if args.get("status"):
            stmt = stmt.where(Payment.status == args["status"])
        if args.get("policyholder_id") is not None:
            stmt = stmt.where(Payment.policyholder_id == args["policyholder_id"])
        rows, has_more = paginate(db_session(), stmt, Payment.id, "payment", args)
        return {"data": payments_out(rows), "has_more": has_more}

    @roles("finance")
    @blp.arguments(PaymentCreate)
    @blp.response(201, PaymentOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Record a payment keyed by hand (check, cash, transfer). It is posted at once:
        unapplied (suspense, or the payer's credit when `policyholder_id` is given) until
        matched. A second payment with the same `external_id` is a 409."""
        return payment_out(service.create_payment(db_session(), data, source="manual"))


@blp.route("/<payment_id>")
class PaymentById(MethodView):
    @roles("finance")
    @blp.response(200, PaymentOut)
    def get(self, payment_id: str) -> dict[str, Any]:
        """A payment with its allocations, match and refunds."""
        return payment_out(service.get_payment(db_session(), path_id("payment", payment_id)))


@blp.route("/<payment_id>/refunds")
class PaymentRefunds(MethodView):
    @roles("finance")
    @blp.arguments(RefundIn)
    @blp.response(201, PaymentOut)
    def post(self, data: dict[str, Any], payment_id: str) -> dict[str, Any]:
        """Refund part or all of a payment: from its unapplied money first, then from its
        most recent allocations (those invoices re-open). It is owed (`pending`, see GET
        /refunds) until paid out: a Stripe payment's is sent to Stripe at once and paid out
        when Stripe's webhook says so; any other is paid by check or transfer."""
        payment = refunds.refund_payment(
            db_session(),
            _settings(),
            path_id("payment", payment_id),
            data["amount"],
            reason=data.get("reason"),
        )
        return payment_out(payment)
