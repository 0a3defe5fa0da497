"""Our HTML pages in a real browser under their Content-Security-Policy: the inline style
sheet still applies, nothing is blocked, nothing else is loaded."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tests.factories import create_policyholder


def test_html_pages_render_styled_under_their_policy(api, live_server, browser):
    holder = create_policyholder(api, name="Ann Lee")["id"]
    statement = f"{api.base_url}/policyholders/{holder}/statement?from=2026-01-01&to=2026-02-28"
    context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {api.key}"})
    page = context.new_page()
    problems: list[str] = []
    requested: list[str] = []

    def console(message: Any) -> None:
        # Chromium asks for /favicon.ico on its own: a 404, not a violation.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("request", lambda request: requested.append(request.url))
    for url in (
        f"{live_server.base_url}/checkout/done",
        f"{live_server.base_url}/checkout/cancelled",
        f"{statement}&format=html",
    ):
        response = page.goto(url)
        assert response is not None and response.status == 200
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        font = page.evaluate("getComputedStyle(document.body).fontFamily")
        assert "system-ui" in font, (url, font)  # the inline <style> applied
    assert problems == []  # no blocked resource, no violation
    assert {urlsplit(url).netloc for url in requested} == {urlsplit(live_server.base_url).netloc}
    context.close()
