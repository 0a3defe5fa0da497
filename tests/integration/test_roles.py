"""Roles (issue 12, item 7), over real HTTP on each backend: every documented endpoint with a
key of every role. The matrix is docs/api.md's roles table (and /work/shared/API.md's
Conventions): admin may call everything, auditor every GET; billing policyholders, policies
and invoices; finance payments, bank statements, reconciliation and reports, and also reads
invoices and statements of account, writes invoices off and starts a checkout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from premium_billing.audit import trail as audit

from .stripe_helpers import (
    fake,  # noqa: F401
    ledger_problems,
    open_invoices,
    settings,  # noqa: F401
    stripe,  # noqa: F401
)

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("admin", "billing", "finance", "auditor")
B, F = "billing", "finance"

# (method, path, roles besides admin, and auditor on a GET). Ids name nothing: a permitted
# call answers 404 or 422 (or does what a bodiless call does), a forbidden one 403 first.
MATRIX: list[tuple[str, str, set[str]]] = [
    ("GET", "/policyholders", {B}),
    ("POST", "/policyholders", {B}),
    ("GET", "/policyholders/ph_999", {B}),
    ("PATCH", "/policyholders/ph_999", {B}),
    ("GET", "/policyholders/ph_999/statement", {B, F}),
    ("POST", "/policyholders/ph_999/autopay-setup", {B}),
    ("GET", "/policies", {B}),
    ("POST", "/policies", {B}),
    ("GET", "/policies/pol_999", {B}),
    ("GET", "/policies/pol_999/schedule", {B}),
    ("POST", "/policies/pol_999/endorsements", {B}),
    ("POST", "/policies/pol_999/cancellations", {B}),
    ("POST", "/policies/pol_999/reinstatements", {B}),
    ("PUT", "/policies/pol_999/renewal", {B}),
    ("GET", "/invoices", {B, F}),
    ("GET", "/invoices/inv_999", {B, F}),
    ("POST", "/invoices/inv_999/checkout", {B, F}),
    ("POST", "/invoices/inv_999/write-off", {B, F}),
    ("POST", "/invoices/inv_999/void", {B}),
    ("GET", "/payments", {F}),
    ("POST", "/payments", {F}),
    ("GET", "/payments/pay_999", {F}),
    ("POST", "/payments/pay_999/allocations", {F}),
    ("DELETE", "/payments/pay_999/allocations", {F}),
    ("POST", "/payments/pay_999/refunds", {F}),
    ("GET", "/refunds", {F}),
    ("GET", "/refunds/re_999", {F}),
    ("POST", "/refunds/re_999/mark-paid", {F}),
    ("POST", "/bank-statements", {F}),
    ("POST", "/reconciliation/runs", {F}),
    ("GET", "/reconciliation/runs/recon_999", {F}),
    ("GET", "/reconciliation/suspense", {F}),
    ("GET", "/reports/reconciliation", {F}),
    ("GET", "/reports/trial-balance", {F}),
    ("GET", "/reports/aging", {F}),
    ("GET", "/reports/kpis", {F}),
    ("GET", "/jobs", set()),
    ("POST", "/jobs/job_999/runs", set()),
]


def permitted(method: str, others: set[str]) -> set[str]:
    return {"admin"} | others | ({"auditor"} if method == "GET" else set())


def _template(path: str) -> str:
    """/invoices/inv_999/void -> /invoices/{}/void, as the OpenAPI document's paths."""
    return "/".join("{}" if "_999" in part else part for part in path.split("/"))


def test_every_role_on_every_endpoint(api, make_key):
    clients = {role: api.as_key(make_key(role, f"{role} key")) for role in ROLES}
    seen = []
    for method, path, others in MATRIX:
        allowed = permitted(method, others)
        for role, client in clients.items():
            body = None if method in ("GET", "DELETE") else {}
            response = client.request(method, path, json=body)
            seen.append((method, path, role, response.status_code))
            assert response.status_code < 500, (method, path, role, response.text)
            if role in allowed:
                assert response.status_code not in (401, 403), (method, path, role, response.text)
            else:
                assert response.status_code == 403, (method, path, role, response.text)
                assert response.headers["Content-Type"].startswith("application/problem+json")
                assert response.json()["detail"] == f"The '{role}' role may not do this."
    assert len(seen) == len(MATRIX) * len(ROLES)


def test_finance_reads_invoices_and_statements_writes_off_and_starts_a_checkout(
    api,
    db,
    make_key,
    settings,  # noqa: F811
    stripe,  # noqa: F811
):
    """What finance may do of billing's, on real rows, the checkout through the fake Stripe
    and its webhook (the contract's words)."""
    finance = api.as_key(make_key("finance", "Finance team"))
    billing = api.as_key(make_key("billing", "Billing team"))
    first, second = open_invoices(api, db, settings, n=2)
    holder = first["policyholder_id"]
    listed = finance.get("/invoices", params={"policyholder_id": holder})
    assert listed.status_code == 200 and [i["id"] for i in listed.json()["data"]] == [first["id"]]
    assert finance.get(f"/invoices/{first['id']}").json()["amount_due"] == first["amount_due"]
    statement = finance.get(
        f"/policyholders/{holder}/statement", params={"from": "2026-01-01", "to": "2026-12-31"}
    )
    assert statement.status_code == 200, statement.text
    assert [line["reference"] for line in statement.json()["accounts"][0]["lines"]] == [
        first["number"]
    ]
    assert finance.get(f"/policyholders/{holder}").status_code == 403  # billing's, not finance's
    assert finance.post(f"/invoices/{first['id']}/void", json={"reason": "x"}).status_code == 403
    assert finance.post(f"/policyholders/{holder}/autopay-setup").status_code == 403

    checkout = finance.post(f"/invoices/{first['id']}/checkout")
    assert checkout.status_code == 200, checkout.text
    assert stripe.pay(checkout.json()["session_id"]) == 303
    stripe.wait_for_deliveries()
    assert finance.get(f"/invoices/{first['id']}").json()["status"] == "paid"

    written = finance.post(f"/invoices/{second['id']}/write-off", json={"reason": "goodwill"})
    assert written.status_code == 201, written.text
    assert written.json()["status"] == "written_off"
    assert billing.get("/payments").status_code == 403
    assert billing.get("/reports/trial-balance").status_code == 403
    assert ledger_problems(db) == []
    with db.session() as session:
        assert audit.verify(session).problem is None


def test_every_operation_declares_its_roles_and_the_document_shows_them(app):
    """No view forgets @roles (an authenticated auditor could POST to it), and the served
    document names the roles of every operation, as the matrix above for those it lists."""
    undeclared = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule.startswith("/api/v1/docs"):
            continue
        if rule.rule == "/api/v1/openapi.json":
            continue
        view_class = getattr(app.view_functions[rule.endpoint], "view_class", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            view = getattr(view_class, method.lower(), app.view_functions[rule.endpoint])
            if not getattr(view, "allowed_roles", None):
                undeclared.append((method, rule.rule))
    assert undeclared == []

    spec = json.loads((ROOT / "openapi.json").read_text())
    documented = {
        (method.upper(), path.removeprefix("/api/v1")): operation.get("x-roles")
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if method != "parameters"
    }
    assert all(roles for roles in documented.values()), documented
    by_template = {
        (method, path.replace("{", "").replace("}", "")): roles
        for (method, path), roles in documented.items()
    }
    for method, path, others in MATRIX:
        template = _template(path)
        matches = [
            roles
            for (m, p), roles in by_template.items()
            if m == method and _same_shape(p, template)
        ]
        assert len(matches) == 1, (method, path, matches)
        assert set(matches[0]) == permitted(method, others), (method, path)


def _same_shape(documented: str, template: str) -> bool:
    a, b = documented.split("/"), template.split("/")
    return len(a) == len(b) and all(y == "{}" or x == y for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("role", ["billing", "finance", "auditor"])
def test_a_forbidden_call_changes_nothing(api, make_key, role):
    client = api.as_key(make_key(role, "r"))
    body: dict[str, Any] = {"name": "Ann Lee", "email": "ann@example.com"}
    expected = 201 if role == "billing" else 403
    assert client.post("/policyholders", json=body).status_code == expected
    holders = api.get("/policyholders").json()["data"]
    assert len(holders) == (1 if role == "billing" else 0)
