"""The one string rule (`schemas.text_problem`) on every string a request to the API carries:
query parameters, JSON bodies (keys and values, at any depth) and form fields and file
names. It runs before any schema, so that no field of any schema, present or future, can
hand the database a NUL or an unpaired surrogate: the request is a 422 naming each field
(dotted like the schemas' errors: `lines.0.pet.name`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Response, request
from werkzeug.datastructures import MultiDict

from premium_billing.http.limits import FORM_TYPES
from premium_billing.http.problems import problem
from premium_billing.text import text_problem

API_PREFIX = "/api/v1/"


def _add(errors: dict[str, list[str]], name: str, value: str) -> None:
    message = text_problem(value)
    if message is not None and message not in errors.get(name, []):
        errors.setdefault(name, []).append(message)


def json_text_errors(
    document: Any, errors: dict[str, list[str]] | None = None
) -> dict[str, list[str]]:
    """Every string of a parsed JSON document the database cannot store, by dotted path."""
    errors = {} if errors is None else errors
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            _add(errors, path or "_schema", value)
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{path}.{key}" if path else str(key)
                _add(errors, name, key)
                stack.append((name, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item) for i, item in enumerate(value))
    return errors


def _pairs_errors(
    pairs: Iterable[tuple[str | None, str | None]], errors: dict[str, list[str]]
) -> None:
    for name, value in pairs:
        # A form part whose name werkzeug cannot read has None for a name: "" (was a 500).
        name = "" if name is None else name
        _add(errors, name, name)
        if value is not None:
            _add(errors, name, value)


def _items(values: MultiDict[str, Any]) -> Iterable[tuple[str, Any]]:
    return values.items(multi=True)


def check_text() -> Response | None:
    if not request.path.startswith(API_PREFIX):
        return None
    errors: dict[str, list[str]] = {}
    _pairs_errors(_items(request.args), errors)
    if request.mimetype in FORM_TYPES:
        _pairs_errors(_items(request.form), errors)
        files = _items(request.files)
        _pairs_errors(((name, upload.filename or "") for name, upload in files), errors)
    elif request.is_json:
        body = request.get_data(cache=True)
        if body:
            try:
                document = json.loads(body.decode("utf-8"))
            except ValueError:  # not JSON, not UTF-8, a number of more than 4300 digits
                return problem(400, "The request body is not valid JSON.")
            json_text_errors(document, errors)
    if not errors:
        return None
    return problem(422, f"Invalid input: {', '.join(sorted(errors))}.", errors)
