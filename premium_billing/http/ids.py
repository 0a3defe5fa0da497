"""Public ids are opaque strings: a type prefix and the row number ('pol_42')."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields

from premium_billing.errors import NotFound

_ID = re.compile(r"^([a-z]+)_([1-9][0-9]{0,17})$")

PREFIXES = {
    "policyholder": "ph",
    "policy": "pol",
    "invoice": "inv",
    "payment": "pay",
    "statement": "stm",
    "run": "run",
    "key": "key",
    "refund": "re",
    "notification": "ntf",
    "webhook_endpoint": "we",
    "event": "evt",
    "delivery": "dlv",
}


def format_id(kind: str, number: int | None) -> str | None:
    return None if number is None else f"{PREFIXES[kind]}_{number}"


def parse_id(kind: str, text: object) -> int | None:
    """The row number behind a public id, or None when `text` is not an id of this kind."""
    if not isinstance(text, str):
        return None
    match = _ID.match(text)
    if match is None or match.group(1) != PREFIXES[kind]:
        return None
    return int(match.group(2))


def path_id(kind: str, text: str) -> int:
    """A path parameter's row number; a malformed id is simply not found."""
    number = parse_id(kind, text)
    if number is None:
        raise NotFound(f"{kind} {text!r} not found")
    return number


class PublicId(fields.Field):
    """Serialises a row number as 'pol_42'; loads 'pol_42' back into 42."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        prefix = PREFIXES[kind]
        kwargs["metadata"] = {
            "example": f"{prefix}_1",
            "pattern": f"^{prefix}_[1-9][0-9]{{0,17}}$",
            **(kwargs.get("metadata") or {}),
        }
        super().__init__(**kwargs)
        self.kind = kind

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return format_id(self.kind, value)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        number = parse_id(self.kind, value)
        if number is None:
            raise ValidationError(f"Not a valid {self.kind} id.")
        return number
