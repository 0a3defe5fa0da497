"""Write-offs: POST /api/v1/invoices/{invoice_id}/write-off."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..db.models import Invoice
from ..services import writeoffs as service
from .auth import roles
from .ids import PublicId, path_id
from .session import db_session

blp = Blueprint(
    "writeoffs", __name__, url_prefix="/api/v1/invoices", description="Invoice write-offs"
)


class WriteOffIn(Schema):
    reason = fields.String(load_default=None, validate=validate.Length(max=2000))


class WriteOffLineOut(Schema):
    kind = fields.String()
    description = fields.String()
    amount = fields.Integer()


class WrittenOffInvoiceOut(Schema):
    id = PublicId("invoice")
    number = fields.String()
    policy_id = PublicId("policy")
    policyholder_id = PublicId("policyholder")
    currency = fields.String()
    issue_date = fields.Date()
    due_date = fields.Date()
    lines = fields.List(fields.Nested(WriteOffLineOut))
    total = fields.Integer()
    amount_paid = fields.Integer()
    amount_written_off = fields.Integer()
    amount_due = fields.Integer()
    status = fields.String()


def written_off_invoice_out(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "policy_id": invoice.policy_id,
        "policyholder_id": invoice.policyholder_id,
        "currency": invoice.currency,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        "lines": invoice.lines,
        "total": invoice.total,
        "amount_paid": invoice.amount_paid,
        "amount_written_off": invoice.amount_written_off,
        "amount_due": invoice.amount_due,
        "status": invoice.status,
    }


@blp.route("/<invoice_id>/write-off")
class InvoiceWriteOff(MethodView):
    @roles("finance", "billing")
    @blp.arguments(WriteOffIn)
    @blp.response(201, WrittenOffInvoiceOut)
    def post(self, data: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        """Write off what is still due on an invoice (premium receivable → write-off
        expense). A void invoice, or one with nothing due, is a 409."""
        invoice = service.write_off(
            db_session(),
            current_app.config["SETTINGS"],
            path_id("invoice", invoice_id),
            data.get("reason"),
        )
        return written_off_invoice_out(invoice)
