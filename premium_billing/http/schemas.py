"""Marshmallow schemas and fields shared by the API blueprints.

Every string the API takes follows one rule, `premium_billing.text.text_problem`: text the
database can store. The request guard (`http.text_guard`) applies it to every string of
every request to the API, whatever its schema; `String` applies it too, and bounds the
length: at most the width of the column the value is stored in
(`String(column=Policyholder.name)`), so that a longer value is a 422 naming the field,
never a database error.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from premium_billing.money import is_currency
from premium_billing.text import text_problem


def column_width(column: Any) -> int:
    """The width of a String(n) column (a mapped attribute or a Column)."""
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"{column} has no width: give max_length instead")
    return length


class String(fields.String):
    """A string the database can store: `text_problem` refuses it otherwise, and it is at
    most `max_length` characters, which `column` (where the value is stored) sets to the
    column's width. `min_length=1` refuses the empty string."""

    def __init__(
        self,
        *,
        column: Any = None,
        max_length: int | None = None,
        min_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        if column is not None:
            width = column_width(column)
            if max_length is not None and max_length > width:
                raise ValueError(f"max_length {max_length} is wider than {column} ({width})")
            max_length = width if max_length is None else max_length
        given = kwargs.pop("validate", None)
        if given is None:
            validators = []
        elif isinstance(given, list | tuple):
            validators = list(given)
        else:
            validators = [given]
        if max_length is not None or min_length is not None:
            validators.insert(0, validate.Length(min=min_length, max=max_length))
        super().__init__(validate=validators or None, **kwargs)
        self.max_length = max_length
        self.column = column

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        problem = text_problem(text)
        if problem is not None:
            raise ValidationError(problem)
        return text


class Email(String, fields.Email):
    """An email address, at most 320 characters (RFC 5321's limit, and the column's)."""

    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("column") is None:
            kwargs.setdefault("max_length", 320)
        super().__init__(**kwargs)


class Money(fields.Integer):
    """An amount in the currency's minor unit: an integer, never a float."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Range(min=0, max=10**15))
        kwargs.setdefault("metadata", {}).setdefault(
            "description", "Integer amount in the currency's minor unit (48000 = 480.00)."
        )
        super().__init__(strict=True, **kwargs)


class Currency(String):
    """An ISO 4217 code (case and surrounding spaces forgiven), loaded as 'USD'."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_length=3, max_length=3, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        code = text.strip().upper()
        if not is_currency(code):
            raise ValidationError(f"{text!r} is not an ISO 4217 currency code.")
        return code


class ListArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    starting_after = String(load_default=None, max_length=40)


class ListMeta(Schema):
    has_more = fields.Boolean(required=True)


class ReasonSchema(Schema):
    reason = String(load_default=None, max_length=2000)
