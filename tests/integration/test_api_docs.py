"""GET /api/v1/docs: the OpenAPI document as a page, from our own files, with no API key."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin

EXPECTED_TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".png": "image/png",
}


class _References(HTMLParser):
    """Every URL the page makes the browser load (scripts, styles, icons) or names."""

    def __init__(self) -> None:
        super().__init__()
        self.loaded: list[str] = []
        self.named: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.loaded.append(str(values[name]))
        if values.get("data-openapi-url"):
            self.named.append(str(values["data-openapi-url"]))


def _page(api):
    response = api.as_key(None).get("/docs")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    return response


def test_page_needs_no_key_and_loads_only_our_own_files(api):
    response = _page(api)
    html = response.text
    assert "<title>Premium billing API v1</title>" in html
    assert not re.search(r"https?:", html, re.IGNORECASE), "the page names another host"
    assert "//" not in html, "a protocol-relative URL names another host"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp

    references = _References()
    references.feed(html)
    assert len(references.loaded) == 5  # stylesheet, two icons, the bundle, the initializer
    anonymous = api.as_key(None)
    for url in references.loaded:
        assert url.startswith("/api/v1/docs/"), url
        asset = anonymous.get(urljoin(api.base_url, url))
        assert asset.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert asset.headers["Content-Type"].split(";")[0] == EXPECTED_TYPES[suffix], url
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        assert asset.content, url

    # What the page shows: the served OpenAPI document, also without a key.
    assert references.named == ["/api/v1/openapi.json"]
    spec = anonymous.get(urljoin(api.base_url, references.named[0]))
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "Premium billing"


def test_initializer_asks_no_other_host(api):
    references = _References()
    references.feed(_page(api).text)
    init = next(url for url in references.loaded if url.endswith("/init.js"))
    script = api.as_key(None).get(urljoin(api.base_url, init)).text
    assert not re.search(r"https?:", script)
    assert "validatorUrl: null" in script  # else Swagger UI sends the spec to swagger.io
    assert "root.dataset.openapiUrl" in script


def test_source_maps_are_served_and_other_package_files_are_not(api):
    maps = api.as_key(None).get("/docs/static/swagger-ui-bundle.js.map")
    assert maps.status_code == 200
    assert maps.headers["Content-Type"] == "application/json"
    # The package's demo page (it loads the Petstore) is not ours to serve; nor is anything
    # outside the directory.
    for name in ("index.html", "swagger-initializer.js", "..%2F__init__.py"):
        assert api.get(f"/docs/static/{name}").status_code == 404, name


def test_the_api_itself_still_needs_a_key(api):
    assert api.as_key(None).get("/policies").status_code == 401
    # Under the docs prefix only the page's own files exist: anything else is a 404.
    assert api.as_key(None).get("/docs/static/index.html").status_code == 404
