"""X-Request-Id: the client's, when it is a safe token; otherwise our own. Echoed on every
response, logged with the request and written to the audit trail of its changes (whose
column is 100 wide), so an unchecked header could break every audited write."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

MAX_LENGTH = 100  # audit_log.request_id
SAFE = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_LENGTH}}}")


def request_id(header: str | None) -> str:
    """The id of a request whose X-Request-Id header is `header`: the header when it is a
    safe token (1 to 100 of A-Z a-z 0-9 . _ : -), otherwise a new random one."""
    if header is not None and SAFE.fullmatch(header):
        return header
    return uuid.uuid4().hex


def register_request_id(app: Flask) -> None:
    """Registered first: every response, early refusals included, carries the id."""

    @app.before_request
    def _request_id() -> None:
        g.request_id = request_id(request.headers.get("X-Request-Id"))

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-Id"] = g.request_id
        return response
