"""Request bodies: a size cap enforced while reading, and a JSON nesting limit.

Every request's body is read through `CappedStream`: at most the endpoint's limit
(MAX_CONTENT_LENGTH; a view marked `@body_limit("bank_statement_max_length")` has its own),
and the byte past it ends the request with a 413 — a declared Content-Length before reading
anything, a chunked body as soon as it passes the limit (it is never read whole). Werkzeug's
own MAX_CONTENT_LENGTH cannot be used for this: on a chunked body it stops at the limit
without saying whether more followed, so the view would get a silently truncated body.

JSON bodies are parsed recursively (Python's json, webargs, the Stripe webhook's
verification): one nesting arrays or objects deeper than JSON_MAX_DEPTH is a 400 before any
of them sees it, found by a linear scan that does not recurse.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from itertools import accumulate
from typing import IO, Any, TypeVar

from flask import Flask, Request, Response, current_app, request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from premium_billing.http.problems import problem

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LIMIT = "max_content_length"
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def body_limit(setting: str) -> Callable[[F], F]:
    """Let the view take a body of up to `Settings.<setting>` bytes instead of
    MAX_CONTENT_LENGTH. It may sit anywhere among the view's decorators: those made with
    functools.wraps (flask-smorest's, `roles`) carry the mark up to the registered view."""

    def decorator(view: F) -> F:
        view.body_limit_setting = setting  # type: ignore[attr-defined]
        return view

    return decorator


def _too_large(limit: int) -> RequestEntityTooLarge:
    return RequestEntityTooLarge(f"The request body is larger than the {limit} bytes allowed.")


class CappedStream(io.RawIOBase):
    """Reads at most `limit` bytes of `stream`; reading a byte more raises a 413."""

    def __init__(self, stream: Any, limit: int) -> None:
        super().__init__()
        self._stream = stream
        self.limit = limit
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # Ask for one byte past the limit, never more: that byte's arrival is the refusal.
        wanted = min(len(buffer), self.limit + 1 - self.consumed)
        if wanted <= 0:
            raise _too_large(self.limit)
        try:
            data = self._stream.read(wanted) or b""
        except (OSError, ValueError):  # a malformed chunked body, a dropped connection
            raise ClientDisconnected() from None
        size = len(data)
        buffer[:size] = data
        self.consumed += size
        if self.consumed > self.limit:
            raise _too_large(self.limit)
        return size


class BillingRequest(Request):
    """Flask's request, closing at its end every file its form parser spooled: also those of
    a parse that stopped half-way (a 413 in the middle of an upload), which Werkzeug's
    `close` does not know about."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        stream = super()._get_file_stream(
            total_content_length, content_type, filename, content_length
        )
        self.__dict__.setdefault("_spooled_files", []).append(stream)
        return stream

    def close(self) -> None:
        super().close()
        for stream in self.__dict__.pop("_spooled_files", []):
            stream.close()


def _view(req: Request) -> Any:
    view = current_app.view_functions.get(req.endpoint) if req.endpoint else None
    view_class = getattr(view, "view_class", None)
    if view_class is not None:  # a MethodView (flask-smorest): the method's handler
        view = getattr(view_class, req.method.lower(), None)
    return view


def request_limit(req: Request) -> int:
    """The body limit of this request's endpoint, in bytes."""
    setting = getattr(_view(req), "body_limit_setting", DEFAULT_LIMIT)
    return int(getattr(current_app.config["SETTINGS"], setting))


def cap_body() -> None:
    """Before anything reads the body: its declared length checked, its stream capped."""
    limit = request_limit(request)
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    if "stream" in request.__dict__:  # read already: registered too late
        raise RuntimeError("cap_body must run before anything reads the request body")
    request.environ["wsgi.input"] = CappedStream(request.environ["wsgi.input"], limit)


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON document nest (0 for a scalar), without
    recursion; 0 when the body is not text (no JSON parser will recurse into it either)."""
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
    except (UnicodeDecodeError, LookupError):
        return 0
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def check_json_depth() -> Response | None:
    """Any body but a form (JSON for the API; the Stripe webhook parses whatever it gets)."""
    if request.mimetype in FORM_TYPES:
        return None
    body = request.get_data(cache=True)
    if not body:
        return None
    limit: int = current_app.config["SETTINGS"].json_max_depth
    if json_depth(body) > limit:
        return problem(400, f"The JSON body nests arrays or objects deeper than {limit} levels.")
    return None


def register_limits(app: Flask) -> None:
    """Registered before any hook that reads the body."""
    app.request_class = BillingRequest
    app.before_request(cap_body)
