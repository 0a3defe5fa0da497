"""Invoicing meets the money: credit applied at issue by the job, one audit row per batch,
the statement of account, and the cancellation worked example paid in full."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from premium_billing.audit.models import AuditLog
from premium_billing.jobs.runner import run_job
from tests.factories import create_policy, create_policyholder, pet_line


def test_the_job_applies_a_credit_balance_to_the_next_invoice(api, db, settings):
    holder = create_policyholder(api)["id"]
    policy = create_policy(
        api, holder, effective_date="2026-05-01", fees={"policy_fee": 0, "installment_fee": 0}
    )
    credit = api.post(
        "/payments",
        json={
            "amount": 1500,
            "currency": "USD",
            "method": "check",
            "received_on": "2026-04-20",
            "policyholder_id": holder,
        },
    )
    assert credit.status_code == 201, credit.text
    assert api.get(f"/policyholders/{holder}").json()["credit_balance"] == 1500
    stats = run_job(db, settings, "issue_invoices", date(2026, 4, 20)).stats
    assert stats["credits_applied"] == 1
    invoice = api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"][0]
    assert invoice["lines"][-1]["kind"] == "credit"
    assert invoice["lines"][-1]["amount"] == -1500
    assert (invoice["total"], invoice["amount_paid"], invoice["amount_due"]) == (4000, 1500, 2500)
    assert invoice["status"] == "partially_paid"
    assert api.get(f"/policyholders/{holder}").json()["credit_balance"] == 0
    assert api.get(f"/policyholders/{holder}").json()["balance"] == 2500


def test_each_invoicing_batch_leaves_one_audit_row_naming_the_job(api, db, settings):
    holder = create_policyholder(api)["id"]
    for n in range(5):
        create_policy(api, holder, policy_number=f"A-{n}", effective_date="2026-05-01")
    run = run_job(db, settings.with_overrides(job_batch_size=2), "issue_invoices", date(2026, 5, 1))
    with db.session() as s:
        rows = s.scalars(
            select(AuditLog).where(AuditLog.entity == "invoices", AuditLog.action == "issued")
        ).all()
    assert len(rows) == 3
    assert sum(r.after["count"] for r in rows) == 5
    assert {(r.actor_kind, r.actor_name, r.actor_id) for r in rows} == {
        ("job", "issue_invoices", f"run_{run.id}")
    }


def test_cancellation_worked_example_paid_in_full(api, db, settings):
    holder = create_policyholder(api)["id"]
    base = dict(
        effective_date="2026-01-01",
        billing_plan="annual",
        lines=[pet_line(annual_premium=100000)],
        fees={"policy_fee": 0, "installment_fee": 0},
    )
    results = {}
    for number, method in (("PR-1", "pro_rata"), ("SR-1", "short_rate")):
        policy = create_policy(api, holder, policy_number=number, **base)
        run_job(db, settings, "issue_invoices", date(2026, 1, 1))
        invoice = api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"][0]
        payment = api.post(
            "/payments",
            json={
                "amount": 100000,
                "currency": "USD",
                "method": "bank_transfer",
                "received_on": "2026-01-05",
            },
        ).json()
        allocated = api.post(
            f"/payments/{payment['id']}/allocations",
            json={"allocations": [{"invoice_id": invoice["id"], "amount": 100000}]},
        )
        assert allocated.status_code in (200, 201), allocated.text
        response = api.post(
            f"/policies/{policy['id']}/cancellations",
            json={"effective_date": "2026-07-01", "method": method},
        )
        assert response.status_code == 201, response.text
        results[method] = response.json()
    assert results["pro_rata"]["earned_premium"] == 49589
    assert results["pro_rata"]["refund_due"] == 50411
    assert results["pro_rata"]["balance_due"] == 0
    assert results["short_rate"]["refund_due"] == 45370
    assert results["short_rate"]["balance_due"] == 0


def test_statement_of_account_json_and_printable_html(api, db, settings):
    holder = create_policyholder(api, name="Ann Lee")["id"]
    policy = create_policy(
        api, holder, effective_date="2026-01-10", fees={"policy_fee": 0, "installment_fee": 0}
    )
    run_job(db, settings, "issue_invoices", date(2026, 2, 1))  # Jan 10 and Feb 10
    invoices = api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"]
    payment = api.post(
        "/payments",
        json={"amount": 4000, "currency": "USD", "method": "ach", "received_on": "2026-02-03"},
    ).json()
    api.post(
        f"/payments/{payment['id']}/allocations",
        json={"allocations": [{"invoice_id": invoices[0]["id"], "amount": 4000}]},
    )
    response = api.get(
        f"/policyholders/{holder}/statement", params={"from": "2026-02-01", "to": "2026-02-28"}
    )
    assert response.status_code == 200, response.text
    account = response.json()["accounts"][0]
    assert account["currency"] == "USD"
    assert account["opening_balance"] == 0  # both invoices were issued on Feb 1
    assert [(line["kind"], line["amount"], line["balance"]) for line in account["lines"]] == [
        ("invoice", 4000, 4000),
        ("invoice", 4000, 8000),
        ("payment", -4000, 4000),
    ]
    assert account["closing_balance"] == 4000
    later = api.get(
        f"/policyholders/{holder}/statement", params={"from": "2026-03-01", "to": "2026-03-31"}
    ).json()["accounts"][0]
    assert later["opening_balance"] == later["closing_balance"] == 4000
    html = api.get(
        f"/policyholders/{holder}/statement",
        params={"from": "2026-02-01", "to": "2026-02-28", "format": "html"},
    )
    assert html.headers["Content-Type"].startswith("text/html")
    assert "Statement of account" in html.text and "Ann Lee" in html.text
    assert 'data-testid="closing-USD">40.00<' in html.text
    bad = api.get(
        f"/policyholders/{holder}/statement", params={"from": "2026-03-01", "to": "2026-02-01"}
    )
    assert bad.status_code == 422 and "to" in bad.json()["errors"]
