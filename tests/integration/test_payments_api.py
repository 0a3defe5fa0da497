"""Payments over real HTTP: recording, manual matching, undo, refunds, over-allocation."""

from __future__ import annotations

from sqlalchemy import func, select

from premium_billing.ledger.models import JournalLine
from premium_billing.payments.models import Allocation, Payment
from tests.integration.ledger_helpers import (
    allocate,
    invoice,
    issue_invoice,
    issue_invoices,
    ledger_problems,
    new_holder,
    new_policy,
    pay,
)


def test_payment_is_posted_unapplied_to_suspense(api, db):
    payment = pay(api, 48200, reference="INV-2026-000001", payer_name="A. Lee", external_id="chk-1")
    assert payment["id"].startswith("pay_")
    assert payment["status"] == "unapplied"
    assert payment["amount_unapplied"] == 48200
    assert payment["source"] == "manual" and payment["method"] == "check"
    assert payment["allocations"] == [] and payment["match"] is None
    assert api.get(f"/payments/{payment['id']}").json() == payment
    tb = api.get("/reports/trial-balance", params={"as_of": "2026-02-03"}).json()
    usd = {row["account"]: row for row in tb["currencies"][0]["accounts"]}
    assert usd["cash_bank"]["balance"] == 48200
    assert usd["unapplied_cash"]["balance"] == -48200
    assert ledger_problems(db) == []


def test_same_external_id_twice_is_409_and_posts_nothing(api, db):
    pay(api, 1000, external_id="bank-77")
    again = api.post(
        "/payments",
        json={
            "amount": 1000,
            "currency": "USD",
            "method": "check",
            "received_on": "2026-02-03",
            "external_id": "bank-77",
        },
    )
    assert again.status_code == 409, again.text
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 1
        assert s.scalar(select(func.count()).select_from(JournalLine)) == 2


def test_manual_match_pays_invoices_and_names_the_payer(api, db):
    policy = new_policy(api)
    first, second = issue_invoices(db, policy["id"], [10000, 5000])
    payment = pay(api, 12000)
    response = allocate(api, payment["id"], (first, 10000), (second, 2000))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "applied" and body["amount_unapplied"] == 0
    assert body["policyholder_id"] == policy["policyholder_id"]
    assert body["match"]["rule"] == "manual"
    assert sorted((a["invoice_id"], a["amount"]) for a in body["allocations"]) == sorted(
        [(first, 10000), (second, 2000)]
    )
    assert invoice(api, first)["status"] == "paid"
    partly = invoice(api, second)
    assert (partly["status"], partly["amount_paid"], partly["amount_due"]) == (
        "partially_paid",
        2000,
        3000,
    )
    holder = api.get(f"/policyholders/{policy['policyholder_id']}").json()
    assert holder["balance"] == 3000 and holder["credit_balance"] == 0
    assert ledger_problems(db) == []


def test_over_allocation_is_refused_with_422_and_nothing_posted(api, db):
    policy = new_policy(api)
    small, big = issue_invoices(db, policy["id"], [3000, 50000])
    payment = pay(api, 10000)
    beyond_invoice = allocate(api, payment["id"], (small, 3001))
    assert beyond_invoice.status_code == 422, beyond_invoice.text
    assert "allocations.0.amount" in beyond_invoice.json()["errors"]
    beyond_payment = allocate(api, payment["id"], (big, 10001))
    assert beyond_payment.status_code == 422
    # Two lines for the same invoice add up.
    split = allocate(api, payment["id"], (small, 2000), (small, 1001))
    assert split.status_code == 422
    wrong_kind = allocate(api, payment["id"], (small, 0))
    assert wrong_kind.status_code == 422
    unknown = allocate(api, payment["id"], ("inv_999999", 100))
    assert unknown.status_code == 422
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Allocation)) == 0
    assert invoice(api, small)["amount_due"] == 3000
    assert api.get(f"/payments/{payment['id']}").json()["amount_unapplied"] == 10000


def test_currency_mismatch_and_unknown_payment(api, db):
    policy = new_policy(api, currency="EUR")
    inv = issue_invoice(db, policy["id"], 1000)
    payment = pay(api, 1000)  # USD
    response = allocate(api, payment["id"], (inv, 1000))
    assert response.status_code == 422
    assert "allocations.0.invoice_id" in response.json()["errors"]
    assert allocate(api, "pay_424242", (inv, 1)).status_code == 404
    assert api.get("/payments/pay_x").status_code == 404


def test_undo_reopens_invoices_and_returns_money_to_suspense(api, db):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 8000)
    payment = pay(api, 9000)
    assert allocate(api, payment["id"], (inv, 8000)).status_code == 201
    assert api.get(f"/policyholders/{policy['policyholder_id']}").json()["credit_balance"] == 1000
    undone = api.delete(f"/payments/{payment['id']}/allocations")
    assert undone.status_code == 200, undone.text
    body = undone.json()
    assert body["status"] == "unapplied" and body["allocations"] == []
    assert body["policyholder_id"] is None and body["match"] is None
    assert body["amount_unapplied"] == 9000
    reopened = invoice(api, inv)
    assert (reopened["status"], reopened["amount_due"]) == ("open", 8000)
    assert api.get(f"/policyholders/{policy['policyholder_id']}").json()["credit_balance"] == 0
    # Undo is append-only: the allocation and its reversal are both kept.
    with db.session() as s:
        amounts = sorted(s.scalars(select(Allocation.amount)))
    assert amounts == [-8000, 8000]
    assert ledger_problems(db) == []


def test_known_payer_keeps_a_credit_balance_applied_to_the_next_invoice(api, db):
    holder = new_holder(api)
    policy = new_policy(api, holder["id"])
    payment = pay(api, 2500, policyholder_id=holder["id"])
    assert payment["policyholder_id"] == holder["id"]
    assert api.get(f"/policyholders/{holder['id']}").json()["credit_balance"] == 2500
    inv = issue_invoice(db, policy["id"], 4000)
    credited = invoice(api, inv)
    assert credited["amount_paid"] == 2500 and credited["amount_due"] == 1500
    assert credited["status"] == "partially_paid"
    assert credited["lines"][-1]["kind"] == "credit"
    assert credited["lines"][-1]["amount"] == -2500
    holder_now = api.get(f"/policyholders/{holder['id']}").json()
    assert holder_now["credit_balance"] == 0 and holder_now["balance"] == 1500
    after = api.get(f"/payments/{payment['id']}").json()
    assert after["status"] == "applied"
    assert after["allocations"] == [{"invoice_id": inv, "amount": 2500}]
    assert ledger_problems(db) == []


def test_refund_takes_unapplied_money_first_then_reopens_invoices(api, db):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 6000)
    payment = pay(api, 10000)
    assert allocate(api, payment["id"], (inv, 6000)).status_code == 201
    first = api.post(f"/payments/{payment['id']}/refunds", json={"amount": 3000})
    assert first.status_code == 201, first.text
    assert first.json()["amount_unapplied"] == 1000
    assert invoice(api, inv)["status"] == "paid"
    second = api.post(f"/payments/{payment['id']}/refunds", json={"amount": 2000})
    body = second.json()
    assert body["amount_refunded"] == 5000 and body["amount_unapplied"] == 0
    assert body["allocations"] == [{"invoice_id": inv, "amount": 5000}]
    assert invoice(api, inv)["amount_due"] == 1000
    too_much = api.post(f"/payments/{payment['id']}/refunds", json={"amount": 5001})
    assert too_much.status_code == 422
    rest = api.post(f"/payments/{payment['id']}/refunds", json={"amount": 5000})
    assert rest.json()["status"] == "refunded"
    assert invoice(api, inv)["status"] == "open"
    assert [r["amount"] for r in rest.json()["refunds"]] == [3000, 2000, 5000]
    tb = api.get("/reports/trial-balance", params={"as_of": "2099-01-01"}).json()
    accounts = {row["account"]: row for row in tb["currencies"][0]["accounts"]}
    assert accounts["refunds_payable"]["balance"] == -10000
    assert ledger_problems(db) == []


def test_list_payments_by_status(api, db):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 500)
    applied = pay(api, 500)
    allocate(api, applied["id"], (inv, 500))
    waiting = pay(api, 700)
    listed = api.get("/payments", params={"status": "unapplied"}).json()
    assert [p["id"] for p in listed["data"]] == [waiting["id"]]
    assert [p["id"] for p in api.get("/payments", params={"status": "applied"}).json()["data"]] == [
        applied["id"]
    ]
    assert api.get("/payments", params={"status": "lost"}).status_code == 422


def test_roles_billing_may_not_post_payments(api, make_key):
    billing = api.as_key(make_key("billing", "b"))
    response = billing.post(
        "/payments",
        json={"amount": 1, "currency": "USD", "method": "cash", "received_on": "2026-01-01"},
    )
    assert response.status_code == 403
    auditor = api.as_key(make_key("auditor", "a"))
    assert auditor.get("/payments").status_code == 200


def test_bad_payment_input_is_422_naming_the_field(api, db):
    base = {"amount": 100, "currency": "USD", "method": "check", "received_on": "2026-01-01"}
    for field, value in [
        ("amount", 0),
        ("amount", 1.5),
        ("amount", "100"),
        ("currency", "XXX1"),
        ("method", "bitcoin"),
        ("received_on", "2026-02-30"),
        ("policyholder_id", "pol_1"),
    ]:
        response = api.post("/payments", json={**base, field: value})
        assert response.status_code == 422, (field, value, response.text)
        assert field in response.json()["errors"], response.json()
    unknown_holder = api.post("/payments", json={**base, "policyholder_id": "ph_99999"})
    assert unknown_holder.status_code == 422
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 0


def test_spec_documents_payments_write_offs_and_trial_balance(api):
    paths = api.as_key(None).get("/openapi.json").json()["paths"]
    assert set(paths["/api/v1/payments"]) >= {"get", "post"}
    assert set(paths["/api/v1/payments/{payment_id}/allocations"]) >= {"post", "delete"}
    assert "post" in paths["/api/v1/payments/{payment_id}/refunds"]
    assert "get" in paths["/api/v1/payments/{payment_id}"]
    assert "post" in paths["/api/v1/invoices/{invoice_id}/write-off"]
    assert "get" in paths["/api/v1/reports/trial-balance"]


def test_idempotency_key_replays_a_payment_instead_of_posting_twice(api, db):
    body = {"amount": 700, "currency": "USD", "method": "cash", "received_on": "2026-02-01"}
    headers = {"Idempotency-Key": "pay-once"}
    first = api.post("/payments", json=body, headers=headers)
    second = api.post("/payments", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["id"] == second.json()["id"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 1
