"""GET /api/v1/docs in a real browser: Swagger UI renders every operation under its
content security policy, and the browser asks no host but ours."""

from __future__ import annotations

from urllib.parse import urlsplit


def test_docs_page_renders_the_operations_from_our_own_host(api, browser):
    context = browser.new_context()  # no Authorization header: the page is public
    page = context.new_page()
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: message.type == "error" and problems.append(message.text))

    response = page.goto(f"{api.base_url}/docs")
    assert response is not None and response.status == 200
    page.wait_for_selector(".opblock", timeout=15_000)

    assert page.locator(".info .title").inner_text().startswith("Premium billing")
    assert page.locator(".opblock").count() == sum(
        method != "parameters"
        for operations in api.as_key(None).get("/openapi.json").json()["paths"].values()
        for method in operations
    )
    ours = urlsplit(api.base_url).netloc
    assert {urlsplit(url).netloc for url in requested} == {ours}, requested
    assert problems == []  # no script error, no blocked resource
    context.close()
