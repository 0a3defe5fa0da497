"""Invoicing and renewal jobs: lead time, one invoice per installment, lines, numbers,
journal, renewals and expiry, the jobs API and CLI."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from premium_billing.invoicing.models import Invoice
from premium_billing.jobs.runner import run_job
from premium_billing.ledger.models import JournalLine
from tests.factories import create_policy, create_policyholder, pet_line


def run(db, settings, name, as_of):
    return run_job(db, settings, name, date.fromisoformat(as_of)).stats


def invoice_count(db):
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Invoice))


def test_installments_within_the_lead_time_are_invoiced_once(api, db, settings):
    policy = create_policy(api, effective_date="2026-01-31")
    stats = run(db, settings, "issue_invoices", "2026-02-13")
    # due 01-31 and 02-28 (within 14 days of 02-13 → horizon 02-27? no: 02-28 is 15 days)
    assert stats["horizon"] == "2026-02-27"
    assert stats["invoices_issued"] == 1
    stats = run(db, settings, "issue_invoices", "2026-02-14")
    assert stats["invoices_issued"] == 1
    assert run(db, settings, "issue_invoices", "2026-02-14")["invoices_issued"] == 0
    invoices = api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"]
    assert [i["due_date"] for i in invoices] == ["2026-01-31", "2026-02-28"]
    assert [i["issue_date"] for i in invoices] == ["2026-02-13", "2026-02-14"]
    first = invoices[0]
    assert first["number"] < invoices[1]["number"]
    assert first["number"].startswith("INV-2026-")
    assert first["payment_reference"].startswith("RF")
    assert first["lines"] == [
        {"kind": "premium", "description": "Installment 1, PET-000123", "amount": 4000},
        {"kind": "installment_fee", "description": "Installment fee", "amount": 200},
    ]
    assert (first["total"], first["amount_paid"], first["amount_due"]) == (4200, 0, 4200)
    assert first["status"] == "open"
    schedule = api.get(f"/policies/{policy['id']}/schedule").json()["data"]
    assert [r["status"] for r in schedule[:3]] == ["invoiced", "invoiced", "scheduled"]


def test_policy_fee_line_and_issue_journal_balances(api, db, settings):
    create_policy(api, billing_plan="quarterly", fees={"policy_fee": 1500, "installment_fee": 100})
    create_policy(
        api,
        policy_number="EUR-1",
        currency="EUR",
        billing_plan="annual",
        fees={"policy_fee": 0, "installment_fee": 0},
    )
    run(db, settings, "issue_invoices", "2026-01-31")
    invoices = api.get("/invoices").json()["data"]
    usd = next(i for i in invoices if i["currency"] == "USD")
    assert [(line["kind"], line["amount"]) for line in usd["lines"]] == [
        ("premium", 12000),
        ("installment_fee", 100),
        ("policy_fee", 1500),
    ]
    assert usd["total"] == 13600
    with db.session() as s:
        legs = s.execute(
            select(JournalLine.account, JournalLine.currency, JournalLine.amount).order_by(
                JournalLine.currency, JournalLine.account
            )
        ).all()
    assert legs == [
        ("premium_billed", "EUR", -48000),
        ("premium_receivable", "EUR", 48000),
        ("premium_billed", "USD", -13600),
        ("premium_receivable", "USD", 13600),
    ]


def test_cancelled_policies_and_void_installments_are_not_invoiced(api, db, settings):
    policy = create_policy(api, effective_date="2026-01-01")
    run(db, settings, "issue_invoices", "2026-01-01")
    api.post(f"/policies/{policy['id']}/cancellations", json={"effective_date": "2026-01-20"})
    assert run(db, settings, "issue_invoices", "2026-06-01")["invoices_issued"] == 0
    assert invoice_count(db) == 1


def test_batches_commit_and_numbers_stay_unique(api, db, settings):
    holder = create_policyholder(api)["id"]
    for n in range(7):
        create_policy(api, holder, policy_number=f"P-{n}", effective_date="2026-03-01")
    small = settings.with_overrides(job_batch_size=3)
    stats = run(db, small, "issue_invoices", "2026-03-01")
    assert (stats["invoices_issued"], stats["batches"]) == (7, 3)
    with db.session() as s:
        numbers = s.scalars(select(Invoice.number).order_by(Invoice.id)).all()
        seqs = s.scalars(select(Invoice.number_seq).order_by(Invoice.id)).all()
    assert len(set(numbers)) == 7 and numbers == sorted(numbers)
    assert seqs == sorted(seqs)


def test_void_invoice(api, db, settings):
    create_policy(api)
    run(db, settings, "issue_invoices", "2026-01-31")
    invoice = api.get("/invoices").json()["data"][0]
    voided = api.post(f"/invoices/{invoice['id']}/void", json={"reason": "issued in error"})
    assert voided.status_code == 200, voided.text
    assert (voided.json()["status"], voided.json()["amount_due"]) == ("void", 0)
    again = api.post(f"/invoices/{invoice['id']}/void", json={"reason": "again"})
    assert again.status_code == 409
    with db.session() as s:
        receivable = s.scalar(
            select(func.sum(JournalLine.amount)).where(JournalLine.account == "premium_receivable")
        )
    assert receivable == 0
    assert api.get("/invoices", params={"status": "void"}).json()["data"][0]["id"] == invoice["id"]
    assert api.post("/invoices/inv_999/void", json={}).status_code == 404


def test_invoice_filters(api, db, settings):
    a = create_policy(api, effective_date="2026-01-01")
    create_policy(api, policy_number="B", effective_date="2026-01-15")
    run(db, settings, "issue_invoices", "2026-02-01")
    by_policy = api.get("/invoices", params={"policy_id": a["id"]}).json()["data"]
    assert {i["policy_id"] for i in by_policy} == {a["id"]}
    due_before = api.get("/invoices", params={"due_before": "2026-01-15"}).json()["data"]
    assert [i["due_date"] for i in due_before] == ["2026-01-01"]
    assert api.get("/invoices", params={"status": "paid"}).json()["data"] == []
    bad = api.get("/invoices", params={"due_before": "soon"})
    assert bad.status_code == 422 and "due_before" in bad.json()["errors"]


def test_renewal_with_a_different_premium_and_its_first_invoice(api, db, settings):
    policy = create_policy(
        api,
        effective_date="2026-01-01",
        billing_plan="monthly",
        fees={"policy_fee": 0, "installment_fee": 0},
    )
    api.put(f"/policies/{policy['id']}/renewal", json={"lines": [pet_line(annual_premium=60000)]})
    assert run(db, settings, "renewals", "2026-12-01")["renewed"] == 0  # 31 days before
    stats = run(db, settings, "renewals", "2026-12-02")
    assert (stats["renewed"], stats["renewal_invoices"]) == (1, 1)
    assert run(db, settings, "renewals", "2026-12-02")["renewed"] == 0
    renewed = api.get(f"/policies/{policy['id']}").json()
    assert renewed["expiration_date"] == "2028-01-01"
    term2 = [r for r in renewed["schedule"] if r["term"] == 2]
    assert len(term2) == 12 and sum(r["amount"] for r in term2) == 60000
    assert term2[0]["due_date"] == "2027-01-01" and term2[0]["status"] == "invoiced"
    invoice = api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"][-1]
    assert (invoice["due_date"], invoice["total"], invoice["issue_date"]) == (
        "2027-01-01",
        5000,
        "2026-12-02",
    )
    # the renewal lines were used once
    assert renewed["renewal_lines"] is None
    # on the new term's start date, the new term is current
    run(db, settings, "renewals", "2027-01-01")
    assert api.get(f"/policies/{policy['id']}").json()["annual_premium"] == 60000
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "active"


def test_renewal_keeps_the_current_premium_when_none_was_set(api, db, settings):
    policy = create_policy(api, effective_date="2026-01-01", billing_plan="annual")
    run(db, settings, "renewals", "2026-12-15")
    schedule = api.get(f"/policies/{policy['id']}/schedule").json()["data"]
    assert [(r["term"], r["amount"]) for r in schedule] == [(1, 48000), (2, 48000)]


def test_a_non_renewing_policy_expires_after_its_end_date(api, db, settings):
    policy = create_policy(api, effective_date="2026-01-01", auto_renew=False)
    run(db, settings, "renewals", "2026-12-31")
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "active"
    stats = run(db, settings, "renewals", "2027-01-01")
    assert stats["expired"] == 1 and stats["renewed"] == 0
    assert api.get(f"/policies/{policy['id']}").json()["status"] == "expired"
    assert (
        api.get("/policies", params={"status": "expired"}).json()["data"][0]["id"] == policy["id"]
    )


def test_jobs_api_runs_and_lists(api, make_key):
    create_policy(api, effective_date="2026-05-01")
    response = api.post("/jobs/issue_invoices/runs", json={"as_of": "2026-05-01"})
    assert response.status_code == 201, response.text
    assert response.json()["stats"]["invoices_issued"] == 1
    assert response.json()["status"] == "succeeded"
    jobs = api.get("/jobs").json()["data"]
    by_name = {j["name"]: j for j in jobs}
    assert {"issue_invoices", "renewals"} <= set(by_name)
    assert by_name["issue_invoices"]["last_run"]["id"] == response.json()["id"]
    assert by_name["renewals"]["next_run_at"] is not None
    assert api.post("/jobs/nonsense/runs", json={}).status_code == 404
    bad = api.post("/jobs/renewals/runs", json={"as_of": "tomorrow"})
    assert bad.status_code == 422 and "as_of" in bad.json()["errors"]
    billing = api.as_key(make_key("billing", "b"))
    assert billing.post("/jobs/renewals/runs", json={}).status_code == 403


def test_invoice_numbers_past_six_digits_stay_unique(api, db, settings, backend):
    from sqlalchemy import text, update

    holder = create_policyholder(api)["id"]
    create_policy(
        api, holder, policy_number="FIRST", effective_date="2026-01-01", billing_plan="annual"
    )
    run(db, settings, "issue_invoices", "2026-01-01")
    for n in range(3):
        create_policy(api, holder, policy_number=f"N-{n}", effective_date="2026-04-01")
    with db.session() as s:
        # as if 999,998 invoices had been issued before
        s.execute(update(Invoice).values(number_seq=999998))
        if backend == "postgresql":
            s.execute(text("SELECT setval('invoice_number_seq', 999998)"))
        s.commit()
    run(db, settings, "issue_invoices", "2026-04-01")
    with db.session() as s:
        numbers = s.scalars(select(Invoice.number).order_by(Invoice.number_seq)).all()
    assert numbers[1:] == ["INV-2026-999999", "INV-2026-1000000", "INV-2026-1000001"]
