"""What a cancellation answers: the policy rules' figures and what settling the account did."""

from __future__ import annotations

from marshmallow import Schema, fields

from premium_billing.http.ids import PublicId
from premium_billing.policies.schemas import CancellationOut


class CreditNoteOut(Schema):
    invoice_id = PublicId("invoice")
    amount = fields.Integer(metadata={"description": "Premium taken off the invoice."})


class SettlementRefundOut(Schema):
    id = PublicId("refund")
    payment_id = PublicId("payment")
    amount = fields.Integer()
    currency = fields.String()
    channel = fields.String()
    status = fields.String()


class SettlementOut(CancellationOut):
    """The cancellation and its settlement: the final invoice of earned but unbilled
    premium, the premium credited off the invoices, the refunds owed."""

    final_invoice_id = PublicId("invoice", allow_none=True)
    credits = fields.List(fields.Nested(CreditNoteOut))
    refunds = fields.List(fields.Nested(SettlementRefundOut))
