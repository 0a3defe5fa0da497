"""Write-offs: POST /api/v1/invoices/{invoice_id}/write-off."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from ..services import writeoffs as service
from . import schemas
from .auth import roles
from .ids import path_id
from .invoices import invoice_out
from .session import db_session

blp = Blueprint(
    "writeoffs", __name__, url_prefix="/api/v1/invoices", description="Invoice write-offs"
)


class WriteOffIn(Schema):
    reason = fields.String(load_default=None, validate=validate.Length(max=2000))


@blp.route("/<invoice_id>/write-off")
class InvoiceWriteOff(MethodView):
    @roles("finance", "billing")
    @blp.arguments(WriteOffIn)
    @blp.response(201, schemas.InvoiceOut)
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
