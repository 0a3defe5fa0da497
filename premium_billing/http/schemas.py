"""Marshmallow schemas shared by the API blueprints."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from premium_billing.money import is_currency


class Money(fields.Integer):
    """An amount in the currency's minor unit: an integer, never a float."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Range(min=0, max=10**15))
        kwargs.setdefault("metadata", {}).setdefault(
            "description", "Integer amount in the currency's minor unit (48000 = 480.00)."
        )
        super().__init__(strict=True, **kwargs)


class Currency(fields.String):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        code = text.strip().upper()
        if not is_currency(code):
            raise ValidationError(f"{text!r} is not an ISO 4217 currency code.")
        return code


class ListArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    starting_after = fields.String(load_default=None)


class ListMeta(Schema):
    has_more = fields.Boolean(required=True)


class ReasonSchema(Schema):
    reason = fields.String(load_default=None, validate=validate.Length(max=2000))
