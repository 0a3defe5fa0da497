"""Every error as application/problem+json (RFC 9457)."""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Flask, Response
from marshmallow import Schema, fields
from werkzeug.exceptions import HTTPException, InternalServerError

from premium_billing.errors import DomainError, ServiceError

log = logging.getLogger(__name__)

PROBLEM_TYPE = "about:blank"


class ProblemSchema(Schema):
    """RFC 9457 problem details (served as application/problem+json)."""

    type = fields.String(metadata={"example": "about:blank"})
    title = fields.String(metadata={"example": "Unprocessable Entity"})
    status = fields.Integer(metadata={"example": 422})
    detail = fields.String(metadata={"example": "Invalid input: currency."})
    errors = fields.Dict(
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Validation errors by field (422)."},
    )


def problem(
    status: int, detail: str, errors: dict[str, list[str]] | None = None, title: str | None = None
) -> Response:
    from http import HTTPStatus

    body: dict[str, Any] = {
        "type": PROBLEM_TYPE,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs/marshmallow nested messages → {"lines.0.annual_premium": ["..."]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "_schema"
            for field, msgs in flatten_messages(value, name).items():
                flat.setdefault(field, []).extend(msgs)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix or "_schema"] = list(messages)
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            flat.update(flatten_messages(value, f"{prefix}.{i}" if prefix else str(i)))
    else:
        flat[prefix or "_schema"] = [str(messages)]
    return flat


def http_exception_problem(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if status == 400 and messages:
        # webargs: the body is not valid JSON
        return problem(400, "The request body is not valid JSON.")
    if messages:
        # webargs nests by location: {"json": {...}, "query": {...}}
        merged: dict[str, Any] = {}
        for location_messages in messages.values():
            if isinstance(location_messages, dict):
                merged.update(location_messages)
            else:
                merged.setdefault("_schema", location_messages)
        errors = flatten_messages(merged)
        fields_named = ", ".join(sorted(errors))
        return problem(status, f"Invalid input: {fields_named}.", errors)
    detail = data.get("message") or error.description or ""
    return problem(status, str(detail))


def register_problem_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError) -> Response:
        errors = {error.field: [error.message]} if error.field else None
        return problem(error.status, error.message, errors)

    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Response:
        errors = {error.field: [error.message]} if error.field else None
        return problem(422, error.message, errors)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        return http_exception_problem(error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        if isinstance(error, HTTPException):
            return http_exception_problem(error)
        log.exception("unhandled error", exc_info=error)
        return problem(500, InternalServerError.description)
