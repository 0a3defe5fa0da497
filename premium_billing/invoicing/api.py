"""Invoices: /api/v1/invoices."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from premium_billing.clock import business_date
from premium_billing.http.auth import roles
from premium_billing.http.ids import path_id
from premium_billing.http.pagination import paginate
from premium_billing.http.schemas import ReasonSchema
from premium_billing.http.session import db_session
from premium_billing.invoicing import issue as invoicing
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import payment_reference
from premium_billing.invoicing.schemas import InvoiceFilters, InvoiceList, InvoiceOut

blp = Blueprint("invoices", __name__, url_prefix="/api/v1/invoices", description="Invoices")


def invoice_out(invoice: Invoice) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "payment_reference": payment_reference(invoice.number),
        "policy_id": invoice.policy_id,
        "policyholder_id": invoice.policyholder_id,
        "currency": invoice.currency,
        "issue_date": invoice.issue_date,
        "due_date": invoice.due_date,
        "lines": invoice.lines,
        "total": invoice.total,
        "amount_paid": invoice.amount_paid,
        "amount_written_off": invoice.amount_written_off,
        "amount_credited": invoice.amount_credited,
        "amount_due": invoice.amount_due,
        "status": invoice.status,
        "void_reason": invoice.void_reason,
    }


@blp.route("")
class Invoices(MethodView):
    @roles("billing", "finance")
    @blp.arguments(InvoiceFilters, location="query")
    @blp.response(200, InvoiceList)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List invoices by policy, policyholder, status, or due before a date."""
        stmt = select(Invoice)
        if args.get("policy_id") is not None:
            stmt = stmt.where(Invoice.policy_id == args["policy_id"])
        if args.get("policyholder_id") is not None:
            stmt = stmt.where(Invoice.policyholder_id == args["policyholder_id"])
        if args.get("status"):
            stmt = stmt.where(Invoice.status == args["status"])
        if args.get("due_before"):
            stmt = stmt.where(Invoice.due_date < args["due_before"])
        rows, has_more = paginate(db_session(), stmt, Invoice.id, "invoice", args)
        return {"data": [invoice_out(i) for i in rows], "has_more": has_more}


@blp.route("/<invoice_id>")
class InvoiceById(MethodView):
    @roles("billing", "finance")
    @blp.response(200, InvoiceOut)
    def get(self, invoice_id: str) -> dict[str, Any]:
        """An invoice with its lines, amounts and status."""
        return invoice_out(invoicing.get_invoice(db_session(), path_id("invoice", invoice_id)))


@blp.route("/<invoice_id>/void")
class InvoiceVoid(MethodView):
    @roles("billing")
    @blp.arguments(ReasonSchema)
    @blp.response(200, InvoiceOut)
    def post(self, data: dict[str, Any], invoice_id: str) -> dict[str, Any]:
        """Void an open invoice on which nothing has been paid (its receivable is reversed)."""
        today = business_date(current_app.config["SETTINGS"].timezone)
        invoice = invoicing.void_invoice(
            db_session(), path_id("invoice", invoice_id), data.get("reason"), today
        )
        return invoice_out(invoice)
