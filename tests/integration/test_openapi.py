"""The OpenAPI document served at /api/v1/openapi.json is the checked-in openapi.json."""

from __future__ import annotations

import json

from premium_billing.config import PROJECT_ROOT

CHECKED_IN = PROJECT_ROOT / "openapi.json"


def test_served_spec_matches_the_checked_in_file(api):
    served = api.as_key(None).get("/openapi.json")
    assert served.status_code == 200
    assert json.loads(CHECKED_IN.read_text()) == served.json(), (
        "openapi.json is stale: run `make openapi`"
    )


def test_spec_documents_the_public_contract(api):
    spec = api.as_key(None).get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/policyholders",
        "/api/v1/policyholders/{holder_id}",
        "/api/v1/policies",
        "/api/v1/policies/{policy_id}",
        "/api/v1/policies/{policy_id}/schedule",
        "/api/v1/policies/{policy_id}/endorsements",
        "/api/v1/policies/{policy_id}/cancellations",
        "/api/v1/policies/{policy_id}/reinstatements",
        "/api/v1/policies/{policy_id}/renewal",
    ):
        assert path in paths, path
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "put" in paths["/api/v1/policies/{policy_id}/renewal"]
