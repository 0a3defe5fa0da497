"""Marshmallow schemas shared by the API blueprints."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from premium_billing.http.ids import PublicId
from premium_billing.http.schemas import ListArgs, ListMeta, String


class InvoiceLineOut(Schema):
    kind = fields.String()
    description = fields.String()
    amount = fields.Integer()


class InvoiceOut(Schema):
    id = PublicId("invoice")
    number = fields.String()
    payment_reference = fields.String(
        metadata={"description": "ISO 11649 creditor reference (RF…) to quote when paying."}
    )
    policy_id = PublicId("policy")
    policyholder_id = PublicId("policyholder")
    currency = fields.String()
    issue_date = fields.Date()
    due_date = fields.Date()
    lines = fields.List(fields.Nested(InvoiceLineOut))
    total = fields.Integer(
        metadata={"description": "What the invoice bills, net of the premium credited off it."}
    )
    amount_paid = fields.Integer()
    amount_written_off = fields.Integer()
    amount_credited = fields.Integer(
        metadata={
            "description": "Premium taken off by credit notes (a cancellation's unearned "
            "premium, a premium cut): billed at issue = total + amount_credited."
        }
    )
    amount_due = fields.Integer()
    status = fields.String()
    void_reason = fields.String(allow_none=True)


class InvoiceList(ListMeta):
    data = fields.List(fields.Nested(InvoiceOut))


class InvoiceFilters(ListArgs):
    policy_id = PublicId("policy", load_default=None)
    policyholder_id = PublicId("policyholder", load_default=None)
    status = String(
        load_default=None,
        validate=validate.OneOf(["open", "partially_paid", "paid", "void", "written_off"]),
    )
    due_before = fields.Date(load_default=None)
