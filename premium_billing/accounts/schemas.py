"""Marshmallow schemas shared by the API blueprints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from premium_billing.http.ids import PublicId
from premium_billing.http.schemas import String


class StatementArgs(Schema):
    from_ = fields.Date(data_key="from", required=True)
    to = fields.Date(required=True)
    format = String(load_default="json", validate=validate.OneOf(["json", "html"]))

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if data["to"] < data["from_"]:
            raise ValidationError("Must not be before from.", "to")


class StatementLineOut(Schema):
    date = fields.Date()
    kind = fields.String()
    reference = fields.String()
    description = fields.String()
    amount = fields.Integer(metadata={"description": "> 0 charges, < 0 payments and credits"})
    balance = fields.Integer()


class StatementAccountOut(Schema):
    currency = fields.String()
    opening_balance = fields.Integer()
    lines = fields.List(fields.Nested(StatementLineOut))
    closing_balance = fields.Integer()


class StatementOut(Schema):
    policyholder_id = PublicId("policyholder")
    name = fields.String()
    from_ = fields.Date(data_key="from")
    to = fields.Date()
    accounts = fields.List(fields.Nested(StatementAccountOut))
