"""Structured logs: one JSON object per line, ids and amounts only.

Personal data (names, emails, phones, addresses) is never passed to a logger; as a second
line of defence the formatter masks anything shaped like an email address or a phone number.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

# Attributes every LogRecord has; anything else came in through `extra=`.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d ().-]{7,}\d(?!\w)")  # not inside ids (hex, ulid)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _phone(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    return "[phone]" if digits >= 9 and not _DATE.fullmatch(text) else text


def scrub(text: str) -> str:
    """Mask email addresses and phone-number-like digit runs (dates are kept)."""
    return _PHONE.sub(_phone, _EMAIL.sub("[email]", text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            # The exception type only: messages of driver errors may quote row values.
            body["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json.dumps(body, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the service's loggers (idempotent)."""
    logger = logging.getLogger("premium_billing")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)


request_log = logging.getLogger("premium_billing.requests")
UNMATCHED = "unmatched"


def route_template() -> str:
    """The route the request matched, as its template (`/api/v1/policies/<policy_id>`: no
    ids, a bounded set); `unmatched` for a path no route has. The logs' and the metrics'."""
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def register_request_logging(app: Flask) -> None:
    """One line per API request: method, route (not the raw URL), status, time, ids."""

    @app.before_request
    def _started() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _finished(response: Response) -> Response:
        started = g.get("request_started")
        rule = route_template()
        request_log.info(
            "request",
            extra={
                "event": "request",
                "method": request.method,
                "route": rule,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1)
                if started is not None
                else None,
                "request_id": g.get("request_id"),
                "api_key_id": g.get("api_key_id"),
            },
        )
        return response
