"""GET /api/v1/docs: the OpenAPI document (/api/v1/openapi.json) as a browsable page.

Swagger UI from the `swagger-ui-bundle` package's own files, served by us under
/api/v1/docs/static/: no CDN, no request to another host (the online validator is off),
and no API key needed to read the page (its "Authorize" button takes one to try a call).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, abort, render_template_string, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

PREFIX = "/api/v1/docs"
OPENAPI_URL = "/api/v1/openapi.json"
SWAGGER_UI_DIR = Path(str(swagger_ui_path))

# The files the page loads, and their source maps (browser developer tools ask for them).
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png")
STATIC_FILES = frozenset(
    ASSETS + tuple(f"{name}.map" for name in ASSETS if (SWAGGER_UI_DIR / f"{name}.map").is_file())
)
# Set explicitly: mimetypes' answers for .js and .map depend on the machine's tables.
CONTENT_TYPES = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".png": "image/png",
    ".map": "application/json",
}
# Scripts and styles from this origin only; Swagger UI sets inline styles and data: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Premium billing API v1</title>
<link rel="stylesheet" href="{{ static('swagger-ui.css') }}">
<link rel="icon" type="image/png" sizes="32x32" href="{{ static('favicon-32x32.png') }}">
<link rel="icon" type="image/png" sizes="16x16" href="{{ static('favicon-16x16.png') }}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{{ openapi_url }}"></div>
<script src="{{ static('swagger-ui-bundle.js') }}"></script>
<script src="{{ init_url }}"></script>
</body>
</html>
"""

# A file of its own, not an inline script, so that the policy can forbid inline scripts.
INIT_JS = """window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""

bp = Blueprint("api_docs", __name__, url_prefix=PREFIX)


@bp.get("")
def page() -> Response:
    html = render_template_string(
        PAGE,
        static=lambda name: url_for("api_docs.static_file", filename=name),
        init_url=url_for("api_docs.init_js"),
        openapi_url=OPENAPI_URL,
    )
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


@bp.get("/init.js")
def init_js() -> Response:
    return Response(INIT_JS, mimetype="text/javascript")


@bp.get("/static/<filename>")
def static_file(filename: str) -> Response:
    if filename not in STATIC_FILES:
        abort(404)
    return send_from_directory(
        SWAGGER_UI_DIR, filename, mimetype=CONTENT_TYPES[Path(filename).suffix]
    )
