"""What goes over the wire: one HTTP exchange with the fake (the request as received, and
how to answer it), and the log of every request it received."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any


@dataclass
class RecordedRequest:
    """One request the fake received (API and Checkout pages alike)."""

    method: str
    path: str
    idempotency_key: str | None
    form: dict[str, str]
    query: dict[str, str]
    stripe_version: str | None
    authorization: str | None
    status: int | None = None
    replayed: bool = False
    fault: str | None = None
    at: float = field(default_factory=time.time)


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []

    def add(self, request: RecordedRequest) -> RecordedRequest:
        with self._lock:
            self._requests.append(request)
        return request

    def all(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)


class Exchange:
    """A request to the fake, read from `handler`, and its answer."""

    def __init__(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        split = urllib.parse.urlsplit(handler.path)
        self.method = method
        self.path = split.path
        self.query = split.query
        self.headers = handler.headers
        self._handler = handler

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self._handler.rfile.read(length) if length else b""

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        h = self._handler
        try:
            h.send_response(status)
            for key, value in (headers or {}).items():
                h.send_header(key, value)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            h.wfile.flush()
        except OSError:  # the client gave up (timeout) and closed the connection
            pass

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send(
            status, json_bytes(payload), {"Content-Type": "application/json", **(headers or {})}
        )


def json_bytes(payload: Any) -> bytes:
    """A JSON body as the fake sends it (indented, as Stripe's API answers)."""
    return json.dumps(payload, indent=2).encode("utf-8")
