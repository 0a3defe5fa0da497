"""Write-offs: POST /api/v1/invoices/{invoice_id}/write-off."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from premium_billing.http.auth import roles
from premium_billing.http.ids import path_id
from premium_billing.http.session import db_session
from premium_billing.invoicing.api import invoice_out
from premium_billing.invoicing.schemas import InvoiceOut
from premium_billing.payments import writeoffs as service

blp = Blueprint(
    "writeoffs", __name__, url_prefix="/api/v1/invoices", description="Invoice write-offs"
)


class WriteOffIn(Schema):
    reason = fields.String(load_default=None, validate=validate.Length(max=2000))


@blp.route("/<invoice_id>/write-off")
class InvoiceWriteOff(MethodView):
    @roles("finance", "billing")
    @blp.arguments(WriteOffIn)
    @blp.response(201, InvoiceOut)
    def post(self, data: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        """Write off what is still due on an invoice (premium receivable → write-off
        expense). A void invoice, or one with nothing due, is a 409."""
        invoice = service.write_off(
            db_session(),
            current_app.config["SETTINGS"],
            path_id("invoice", invoice_id),
            data.get("reason"),
        )
        return invoice_out(invoice)
