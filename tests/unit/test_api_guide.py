"""docs/api.md documents what the service serves: every operation of openapi.json, and no
path outside its "Planned" section that the service does not have."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MENTION = re.compile(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]*)")
# Served beside the OpenAPI document's operations (plain Flask routes).
OUTSIDE_SPEC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/webhooks/stripe"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/docs"),
    # The policyholder portal's pages (HTML, a signed token in the path).
    ("GET", "/portal/{}"),
    ("POST", "/portal/{}/invoices/{}/pay"),
    ("POST", "/portal/{}/pay-overdue"),
    ("POST", "/portal/{}/autopay"),
    ("GET", "/portal/{}/checkout/done"),
    ("GET", "/portal/{}/checkout/cancelled"),
    ("GET", "/portal/{}/statement"),
    ("GET", "/portal/{}/statement.pdf"),
}


def _operations() -> set[tuple[str, str]]:
    spec = json.loads((ROOT / "openapi.json").read_text())
    return {
        (method.upper(), re.sub(r"\{[^}]+\}", "{}", path.removeprefix("/api/v1")))
        for path, operations in spec["paths"].items()
        for method in operations
        if method != "parameters"
    }


def _mentioned(text: str) -> set[tuple[str, str]]:
    return {(method, re.sub(r"\{[^}]+\}", "{}", path)) for method, path in MENTION.findall(text)}


def test_guide_names_every_operation_and_no_other_outside_planned():
    built, _, _planned = (ROOT / "docs" / "api.md").read_text().partition("\n## Planned\n")
    operations = _operations()
    mentioned = _mentioned(built)
    assert operations - mentioned == set(), "operations the guide does not document"
    assert mentioned - operations - OUTSIDE_SPEC == set(), "paths the service does not serve"
