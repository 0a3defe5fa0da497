"""The KPIs (issue 15, item 3) on a hand-computed book built through the real API, jobs and
services; both backends. Formulas: docs/kpis.md."""

from __future__ import annotations

from datetime import date
from typing import Any

from premium_billing.jobs.runner import run_job
from premium_billing.payments import writeoffs
from tests.factories import create_policy, pet_line
from tests.integration.ledger_helpers import number
from tests.integration.recon_helpers import csv_file, upload
from tests.integration.test_aging import assert_aging_is_the_journal, pay

APRIL = {"from": "2026-04-01", "to": "2026-04-30"}


def annual(api: Any, policy_number: str, effective: str, premium: int, **kw: Any) -> dict:
    return create_policy(
        api,
        policy_number=policy_number,
        effective_date=effective,
        billing_plan="annual",
        lines=[pet_line(annual_premium=premium)],
        fees={"policy_fee": 0, "installment_fee": 0},
        **kw,
    )


def invoice_of(api: Any, policy: dict) -> dict:
    (invoice,) = api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"]
    return dict(invoice)


def kpis(api: Any, **params: Any) -> dict[str, Any]:
    response = api.get("/reports/kpis", params=params)
    assert response.status_code == 200, response.text
    return {c["currency"]: c for c in response.json()["currencies"]}


def test_kpis_of_a_hand_computed_april(api, db, settings):
    """April 2026 (30 days), USD:
      A  10000 due 03-01, issued 02-20 (opening receivable 10000); 6000 paid by check
         04-10; the 4000 left written off 04-25.
      B  20000 due 04-15, issued 04-05; paid 04-20 by a bank transfer quoting its invoice,
         matched by the reconciliation run of 04-20.
      C   5000 due 04-28, issued 04-20; unpaid (2 days past due on 04-30).
      D   8000 due 05-10, issued 04-28; unpaid (current on 04-30).
      Bank: 15.00 from an unknown payer booked 04-12 (suspense); 7.00 booked 05-02 (May).
    billed 20000 + 5000 + 8000 = 33000; collected 6000 + 20000 = 26000;
    opening 10000; closing 10000 + 33000 − 26000 − 4000 = 13000 (C + D); closing current
    8000 (D); written off 4000.
    collection rate 26000 / 33000 = 0.78787… → 0.7879
    DSO 13000 / 33000 × 30 = 11.818… → 11.8
    CEI (10000 + 33000 − 13000) / (10000 + 33000 − 8000) = 30000 / 35000 = 0.857142… → 0.8571
    auto-match: 2 bank payments booked in April, 1 applied by the matcher → 0.5000
    suspense on 04-30: 1 payment, 1500 (the May one came later).
    EUR: E 9000 due 04-10, issued 04-05, unpaid: billed 9000, collected 0 → rate 0.0000;
    closing 9000, current 0; DSO 9000 / 9000 × 30 = 30.0; CEI (0 + 9000 − 9000) /
    (0 + 9000 − 0) = 0.0000. No Stripe events nor autopay: those figures are null.
    """
    a = annual(api, "KPI-A", "2026-03-01", 10000)
    run_job(db, settings, "issue_invoices", date(2026, 2, 20))
    b = annual(api, "KPI-B", "2026-04-15", 20000)
    e = annual(api, "KPI-E", "2026-04-10", 9000, currency="EUR")
    run_job(db, settings, "issue_invoices", date(2026, 4, 5))
    c = annual(api, "KPI-C", "2026-04-28", 5000)
    run_job(db, settings, "issue_invoices", date(2026, 4, 20))
    d = annual(api, "KPI-D", "2026-05-10", 8000)
    run_job(db, settings, "issue_invoices", date(2026, 4, 28))
    inv_a, inv_b = invoice_of(api, a), invoice_of(api, b)
    assert [invoice_of(api, p)["total"] for p in (a, b, c, d, e)] == [
        10000, 20000, 5000, 8000, 9000,
    ]  # fmt: skip
    pay(api, db, settings, inv_a, 6000, date(2026, 4, 10))
    with db.session() as session:
        writeoffs.write_off(session, settings, number(inv_a["id"]), "small", on=date(2026, 4, 25))
    upload(
        api,
        csv_file(
            "2026-04-12,15.00,USD,Zed Unknown,gift,K-1",
            f"2026-04-20,200.00,USD,Ann Lee,Premium {inv_b['number']},K-2",
        ),
    )
    response = api.post("/reconciliation/runs", json={"as_of": "2026-04-20"})
    assert response.status_code == 201, response.text
    assert response.json()["matched"] == 1, response.text
    upload(api, csv_file("2026-05-02,7.00,USD,Zed Unknown,gift,K-3"), name="may.csv")

    figures = kpis(api, **APRIL)
    usd, eur = figures["USD"], figures["EUR"]
    assert {k: usd[k] for k in usd if k != "currency"} == {
        "billed": 33000,
        "collected": 26000,
        "collection_rate": "0.7879",
        "opening_receivables": 10000,
        "closing_receivables": 13000,
        "closing_current_receivables": 8000,
        "dso": "11.8",
        "cei": "0.8571",
        "written_off": 4000,
        "bank_payments": 2,
        "auto_matched": 1,
        "auto_match_rate": "0.5000",
        "suspense_count": 1,
        "suspense_amount": 1500,
        "median_posting_latency_seconds": None,
        "payment_attempts": 0,
        "failed_payments": 0,
        "failed_payment_rate": None,
        "failed_invoices": 0,
        "recovered_invoices": 0,
        "recovery_rate": None,
    }
    assert (eur["billed"], eur["collected"], eur["collection_rate"]) == (9000, 0, "0.0000")
    assert (eur["closing_receivables"], eur["closing_current_receivables"]) == (9000, 0)
    assert (eur["dso"], eur["cei"], eur["suspense_count"]) == ("30.0", "0.0000", 0)
    # The closing receivables are the aging's total on the period's last day.
    aging = api.get("/reports/aging", params={"as_of": "2026-04-30"}).json()["currencies"]
    assert {t["currency"]: (t["total"], t["current"]) for t in aging} == {
        "EUR": (9000, 0),
        "USD": (13000, 8000),
    }
    assert list(kpis(api, currency="EUR", **APRIL)) == ["EUR"]
    assert_aging_is_the_journal(db, date(2026, 2, 18), date(2026, 5, 3))


def test_march_and_a_period_without_billing(api, db, settings):
    """March: A (10000, issued 02-20, due 03-01) unpaid all month: billed 0, opening and
    closing 10000, none current → collection rate, DSO and CEI have no denominator
    … CEI's is 10000 + 0 − 0 = 10000: (10000 + 0 − 10000) / 10000 = 0.0000."""
    annual(api, "KPI-A", "2026-03-01", 10000)
    run_job(db, settings, "issue_invoices", date(2026, 2, 20))
    (usd,) = kpis(api, **{"from": "2026-03-01", "to": "2026-03-31"}).values()
    assert (usd["billed"], usd["opening_receivables"], usd["closing_receivables"]) == (
        0, 10000, 10000,
    )  # fmt: skip
    assert (usd["collection_rate"], usd["dso"], usd["cei"]) == (None, None, "0.0000")
    (feb,) = kpis(api, **{"from": "2026-02-01", "to": "2026-02-28"}).values()
    assert (feb["billed"], feb["closing_receivables"], feb["closing_current_receivables"]) == (
        10000, 10000, 10000,
    )  # fmt: skip
    # CEI: (0 + 10000 − 10000) / (0 + 10000 − 10000): nothing was collectable → null.
    assert (feb["dso"], feb["cei"]) == ("28.0", None)


def test_bad_periods_are_422_naming_the_field(api):
    for params, name in (
        ({"to": "2026-04-30"}, "from"),
        ({"from": "2026-04-01"}, "to"),
        ({"from": "2026-04-02", "to": "2026-04-01"}, "to"),
        ({"from": "2026-04-01", "to": "2026-04-31"}, "to"),
        ({"from": "2026-04-01", "to": "2026-04-30", "currency": "usdx"}, "currency"),
    ):
        response = api.get("/reports/kpis", params=params)
        assert response.status_code == 422, (params, response.text)
        assert name in response.json()["errors"], response.text
