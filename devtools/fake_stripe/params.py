"""Stripe's request parameters: nested form keys decoded, values validated, and the
Stripe-shaped error (`ApiError`) a bad one is answered with."""

from __future__ import annotations

import re
from typing import Any

from .upstream import CURRENCY_EXPONENTS

CURRENCIES = {c.lower() for c in CURRENCY_EXPONENTS}
MIN_CHARGE = 50  # Stripe's minimum charge, about 0.50 in the major unit


class ApiError(Exception):
    """A Stripe-shaped error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "error": {
                "type": type,
                "code": code,
                "message": message,
                "param": param,
                **(extra or {}),
            }
        }


def error_body(
    message: str, *, type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"type": type, "code": code, "message": message, "param": param}}


# ----------------------------------------------------------------- form decoding


_KEY_PART = re.compile(r"\[([^\]]*)\]")


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    parts = [head]
    if rest:
        parts.extend(_KEY_PART.findall("[" + rest))
    return parts


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's nested form keys to nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = _split_key(key)
        node: Any = root
        for i, part in enumerate(parts[:-1]):
            if part == "":
                part = str(len(node))
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ApiError(400, f"Invalid value for {'['.join(parts[: i + 1])}.", param=key)
            node = nxt
        last = parts[-1] or str(len(node))
        if isinstance(node.get(last), dict):
            raise ApiError(400, f"Invalid value for {key}.", param=key)
        node[last] = value
    nested: dict[str, Any] = _listify(root)
    return nested


# ----------------------------------------------------------------- validation


def check_unknown(params: dict[str, Any], allowed: set[str]) -> None:
    for key in params:
        if key not in allowed:
            raise ApiError(
                400, f"Received unknown parameter: {key}", code="parameter_unknown", param=key
            )


def missing_param(param: str) -> ApiError:
    return ApiError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def int_param(value: Any, param: str, *, minimum: int | None = None) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise ApiError(
            400, f"Invalid integer: {value}", code="parameter_invalid_integer", param=param
        )
    number = int(value)
    if minimum is not None and number < minimum:
        raise ApiError(
            400,
            f"This value must be greater than or equal to {minimum}.",
            code="parameter_invalid_integer",
            param=param,
        )
    return number


def bool_param(value: Any, param: str) -> bool:
    if value in ("true", "false"):
        return bool(value == "true")
    raise ApiError(400, f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=param)


def str_param(params: dict[str, Any], name: str, *, required: bool = False, param: str = "") -> Any:
    value = params.get(name)
    param = param or name
    if value is None:
        if required:
            raise missing_param(param)
        return None
    if not isinstance(value, str):
        raise ApiError(
            400, f"Invalid string: {param}", code="parameter_invalid_string", param=param
        )
    return value


def currency_param(value: Any, param: str) -> str:
    if value is None:
        raise missing_param(param)
    if not isinstance(value, str) or value.lower() not in CURRENCIES:
        raise ApiError(400, f"Invalid currency: {value}.", param=param)
    return value.lower()


def metadata_param(value: Any, param: str = "metadata") -> dict[str, str]:
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, "Invalid object", code="parameter_invalid_empty", param=param)
    if len(value) > 50:
        raise ApiError(400, "Metadata can have at most 50 keys.", param=param)
    for key, item in value.items():
        if len(key) > 40:
            raise ApiError(400, "Metadata keys can be at most 40 characters.", param=param)
        if not isinstance(item, str) or len(item) > 500:
            raise ApiError(
                400, "Metadata values can be at most 500 characters.", param=f"{param}[{key}]"
            )
    return dict(value)
