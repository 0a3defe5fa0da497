"""Bad input: a clear 4xx problem+json naming the field, and nothing written."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from premium_billing.policies.models import Installment, Policy, Policyholder
from tests.factories import create_policy, create_policyholder, pet_line, policy_body


def counts(db):
    with db.session() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(m))
            for m in (Policyholder, Policy, Installment)
        )


def assert_problem(response, status, field=None):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["title"] and "detail" in body
    if field is not None:
        assert field in body["errors"], body


def test_malformed_json_is_400(api, db):
    before = counts(db)
    response = api.post(
        "/policies", data=b'{"policy_number": ', headers={"Content-Type": "application/json"}
    )
    assert_problem(response, 400)
    assert counts(db) == before


BAD_POLICIES = [
    ("missing policy_number", lambda b: b.pop("policy_number"), "policy_number"),
    ("missing lines", lambda b: b.pop("lines"), "lines"),
    ("empty lines", lambda b: b.update(lines=[]), "lines"),
    ("wrong-typed effective_date", lambda b: b.update(effective_date=20260131), "effective_date"),
    ("not a date", lambda b: b.update(effective_date="2026-02-30"), "effective_date"),
    (
        "negative premium",
        lambda b: b["lines"][0].update(annual_premium=-1),
        "lines.0.annual_premium",
    ),
    (
        "float premium",
        lambda b: b["lines"][0].update(annual_premium=480.5),
        "lines.0.annual_premium",
    ),
    (
        "premium as string",
        lambda b: b["lines"][0].update(annual_premium="48000"),
        "lines.0.annual_premium",
    ),
    ("negative fee", lambda b: b["fees"].update(installment_fee=-200), "fees.installment_fee"),
    ("unknown currency", lambda b: b.update(currency="ABC"), "currency"),
    ("billing plan not in the list", lambda b: b.update(billing_plan="weekly"), "billing_plan"),
    (
        "effective after expiration",
        lambda b: b.update(expiration_date="2025-12-31", term_months=None),
        "expiration_date",
    ),
    (
        "plan does not divide the term",
        lambda b: b.update(billing_plan="quarterly", term_months=7),
        "billing_plan",
    ),
    ("pet policy without pet", lambda b: b["lines"][0].update(pet=None), "lines.0.pet"),
    ("unknown field", lambda b: b.update(colour="red"), "colour"),
    ("malformed policyholder id", lambda b: b.update(policyholder_id="42"), "policyholder_id"),
]


@pytest.mark.parametrize(
    "change,field", [(c, f) for _, c, f in BAD_POLICIES], ids=[n for n, _, _ in BAD_POLICIES]
)
def test_invalid_policy_is_422_naming_the_field(api, db, change, field):
    holder = create_policyholder(api)
    body = policy_body(holder["id"])
    if "term_months" in body and field == "expiration_date":
        body.pop("term_months")
    change(body)
    body = {k: v for k, v in body.items() if v is not None}
    before = counts(db)
    assert_problem(api.post("/policies", json=body), 422, field)
    assert counts(db) == before


def test_unknown_policyholder_is_422(api, db):
    before = counts(db)
    assert_problem(api.post("/policies", json=policy_body("ph_424242")), 422, "policyholder_id")
    assert counts(db) == before


def test_duplicate_policy_number_is_409(api, db):
    policy = create_policy(api)
    before = counts(db)
    again = api.post("/policies", json=policy_body(policy["policyholder_id"]))
    assert_problem(again, 409, "policy_number")
    assert counts(db) == before


def test_endorsement_outside_the_term_is_422_and_changes_nothing(api):
    policy = create_policy(api)
    response = api.post(
        f"/policies/{policy['id']}/endorsements",
        json={"effective_date": "2027-02-01", "lines": [pet_line(annual_premium=1)]},
    )
    assert_problem(response, 422, "effective_date")
    before_start = api.post(
        f"/policies/{policy['id']}/endorsements",
        json={"effective_date": "2026-01-30", "lines": [pet_line()]},
    )
    assert_problem(before_start, 422, "effective_date")
    assert api.get(f"/policies/{policy['id']}").json()["schedule"] == policy["schedule"]


def test_cancelling_a_cancelled_policy_is_409(api):
    policy = create_policy(api)
    first = api.post(
        f"/policies/{policy['id']}/cancellations", json={"effective_date": "2026-03-01"}
    )
    assert first.status_code == 201
    assert_problem(
        api.post(f"/policies/{policy['id']}/cancellations", json={"effective_date": "2026-04-01"}),
        409,
    )


def test_bad_cancellation_method_is_422(api):
    policy = create_policy(api)
    assert_problem(
        api.post(
            f"/policies/{policy['id']}/cancellations",
            json={"effective_date": "2026-03-01", "method": "flat"},
        ),
        422,
        "method",
    )
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "active"


def test_missing_and_invalid_key_are_401(api, db):
    before = counts(db)
    assert_problem(api.as_key(None).get("/policies"), 401)
    assert_problem(
        api.as_key("pb_not-a-real-key").post(
            "/policyholders", json={"name": "X", "email": "x@example.com"}
        ),
        401,
    )
    assert api.as_key(None).get("/policies").headers["WWW-Authenticate"].startswith("Bearer")
    assert counts(db) == before


def test_wrong_role_is_403(api, db, make_key):
    finance = api.as_key(make_key("finance", "fin"))
    auditor = api.as_key(make_key("auditor", "aud"))
    before = counts(db)
    assert_problem(finance.post("/policyholders", json={"name": "X", "email": "x@e.com"}), 403)
    assert_problem(auditor.post("/policyholders", json={"name": "X", "email": "x@e.com"}), 403)
    assert counts(db) == before
    assert auditor.get("/policies").status_code == 200
    billing = api.as_key(make_key("billing", "bill"))
    assert billing.post("/policyholders", json={"name": "X", "email": "x@e.com"}).status_code == 201


def test_same_idempotency_key_other_body_is_409(api, db):
    headers = {"Idempotency-Key": "create-ann-1"}
    first = api.post("/policyholders", json={"name": "Ann", "email": "a@e.com"}, headers=headers)
    replay = api.post("/policyholders", json={"name": "Ann", "email": "a@e.com"}, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["Idempotent-Replayed"] == "true"
    before = counts(db)
    assert_problem(
        api.post("/policyholders", json={"name": "Bob", "email": "a@e.com"}, headers=headers),
        409,
        "Idempotency-Key",
    )
    assert counts(db) == before


def test_idempotent_policy_creation_creates_one_policy(api, db):
    holder = create_policyholder(api)
    body = policy_body(holder["id"])
    responses = [
        api.post("/policies", json=body, headers={"Idempotency-Key": "p-1"}) for _ in range(3)
    ]
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert counts(db)[1] == 1


def test_unknown_paths_and_methods_are_problems(api):
    assert_problem(api.get("/nothing-here"), 404)
    assert_problem(api.delete("/policies"), 405)
    assert_problem(api.get("/policies/pol_99999"), 404)


def test_bad_query_parameters_are_422(api):
    assert_problem(api.get("/policies", params={"limit": 0}), 422, "limit")
    assert_problem(api.get("/policies", params={"limit": 501}), 422, "limit")
    assert_problem(api.get("/policies", params={"starting_after": "inv_1"}), 422, "starting_after")
    assert_problem(api.get("/policies", params={"status": "sleeping"}), 422, "status")
