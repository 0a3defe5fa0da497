"""Security headers on every response (one after_request hook; a view's own value wins).

- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`.
- `Content-Security-Policy`: our HTML pages (checkout return pages, the statement of
  account) have no script and one inline style sheet: nothing else may load, no form may
  post, no page may frame them. Anything else (JSON, problem+json) may load nothing at all.
  The API docs page sets its own policy (it runs Swagger UI's scripts from our host).
- `Cache-Control: no-store` unless the view chose its caching: API responses carry
  personal data (names, emails, balances) that no browser or proxy should keep.
- `Strict-Transport-Security` only on a request that came over HTTPS (`request.is_secure`:
  behind a proxy, gunicorn's --forwarded-allow-ips decides whom to believe), HSTS_MAX_AGE.

The `Server` header is the server's own: gunicorn sends `Server: gunicorn`, without a
version (the Werkzeug development server, never used in production, names its version).
"""

from __future__ import annotations

from flask import Flask, Response, current_app, request

HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"

ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def security_headers(response: Response) -> Response:
    headers = response.headers
    for name, value in ALWAYS.items():
        headers.setdefault(name, value)
    policy = HTML_POLICY if response.mimetype == "text/html" else DATA_POLICY
    headers.setdefault("Content-Security-Policy", policy)
    max_age = current_app.config["SETTINGS"].hsts_max_age
    if request.is_secure and max_age:
        headers["Strict-Transport-Security"] = f"max-age={max_age}; includeSubDomains"
    return response


def register_security_headers(app: Flask) -> None:
    app.after_request(security_headers)
