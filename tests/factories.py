"""Request bodies for tests (valid by default; each test changes what it is about)."""

from __future__ import annotations

from typing import Any


def policyholder_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "Ann Lee", "email": "ann@example.com", "phone": "+1 555 0100"}
    body.update(overrides)
    return body


def pet_line(name: str = "Rex", annual_premium: int = 48000) -> dict[str, Any]:
    return {
        "description": name,
        "annual_premium": annual_premium,
        "pet": {"name": name, "species": "dog", "breed": "Labrador", "date_of_birth": "2021-03-02"},
    }


def policy_body(policyholder_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "policyholder_id": policyholder_id,
        "policy_number": "PET-000123",
        "product": "pet",
        "currency": "USD",
        "effective_date": "2026-01-31",
        "term_months": 12,
        "billing_plan": "monthly",
        "lines": [pet_line()],
        "fees": {"policy_fee": 0, "installment_fee": 200},
        "autopay": False,
        "auto_renew": True,
    }
    body.update(overrides)
    return body


def create_policyholder(api: Any, **overrides: Any) -> dict[str, Any]:
    response = api.post("/policyholders", json=policyholder_body(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


def create_policy(api: Any, policyholder_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    if policyholder_id is None:
        policyholder_id = create_policyholder(api)["id"]
    response = api.post("/policies", json=policy_body(policyholder_id, **overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())
