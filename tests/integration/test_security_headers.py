"""Issue 12, edges (12): security headers on every response. API data is not cached,
sniffed or framed; our HTML pages may load nothing but their own inline style; the API docs
page keeps its own policy (it runs Swagger UI's scripts from our host); HSTS only over
HTTPS (tests/e2e/test_served_by_gunicorn.py checks it, and the Server header, behind
gunicorn)."""

from __future__ import annotations

from typing import Any

import requests

from premium_billing.http.docs import CONTENT_SECURITY_POLICY as DOCS_POLICY
from premium_billing.http.security import DATA_POLICY, HTML_POLICY
from tests.factories import create_policyholder

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def assert_secure(response: Any, policy: str, cache: str | None = "no-store") -> None:
    headers = response.headers
    for name, value in COMMON.items():
        assert headers.get(name) == value, (response.url, name, headers)
    assert headers.get("Content-Security-Policy") == policy, (response.url, headers)
    assert "frame-ancestors 'none'" in policy
    if cache is not None:
        assert headers.get("Cache-Control") == cache, (response.url, headers)
    assert "Strict-Transport-Security" not in headers  # plain HTTP


def test_api_responses_are_not_cached_sniffed_or_framed(api):
    holder = create_policyholder(api)
    responses = [
        api.get("/policyholders"),
        api.get(f"/policyholders/{holder['id']}"),
        api.post("/policyholders", json={"name": "Bob", "email": "b@e.com"}),
        api.post("/policyholders", json={}),  # 422
        api.get("/policyholders/ph_999999"),  # 404
        api.as_key(None).get("/policyholders"),  # 401
        api.post("/policyholders", data=b"[" * 100, headers={"Content-Type": "application/json"}),
        api.get(f"/policyholders/{holder['id']}/statement?from=2026-01-01&to=2026-12-31"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 201, 422, 404, 401, 400, 200]
    for response in responses:
        assert_secure(response, DATA_POLICY)


def test_our_html_pages_load_nothing_but_their_inline_style(api, live_server):
    holder = create_policyholder(api)
    pages = [
        requests.get(live_server.base_url + "/checkout/done", timeout=30),
        requests.get(live_server.base_url + "/checkout/cancelled", timeout=30),
        api.get(
            f"/policyholders/{holder['id']}/statement",
            params={"from": "2026-01-01", "to": "2026-12-31", "format": "html"},
        ),
    ]
    for page in pages:
        assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
        assert_secure(page, HTML_POLICY)
        assert "<script" not in page.text  # the policy allows none
    assert "default-src 'none'" in HTML_POLICY and "script-src" not in HTML_POLICY


def test_the_api_docs_keep_their_own_policy(api):
    public = api.as_key(None)
    page = public.get("/docs")
    assert page.status_code == 200
    assert_secure(page, DOCS_POLICY)
    assert "script-src 'self'" in DOCS_POLICY
    for path in ("/docs/init.js", "/docs/static/swagger-ui-bundle.js", "/openapi.json"):
        response = public.get(path)
        assert response.status_code == 200, path
        assert_secure(response, DATA_POLICY, cache=None)


def test_health_and_webhook_answers_carry_the_headers_too(live_server):
    for response in (
        requests.get(live_server.base_url + "/healthz", timeout=30),
        requests.post(live_server.base_url + "/webhooks/stripe", data=b"{}", timeout=30),  # 503
    ):
        assert_secure(response, DATA_POLICY)
