"""Aging as of any date (issue 14, item 6): the bucket of every boundary day, an invoice
paid later still owed as of before, a partly paid invoice's remainder aging, currencies
apart, pagination, the CSV download; both backends, through the real API and services."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

from premium_billing.jobs.runner import run_job
from premium_billing.payments import posting, writeoffs
from premium_billing.reports.aging import aging_totals
from premium_billing.reports.trial_balance import trial_balance
from tests.factories import create_policy, pet_line
from tests.integration.ledger_helpers import number

DUE = date(2026, 3, 1)
BUCKETS = ("current", "1_30", "31_60", "61_90", "over_90")


def book(
    api: Any,
    db: Any,
    settings: Any,
    policy_number: str,
    premium: int = 10000,
    due: date = DUE,
    currency: str = "USD",
    **holder: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """An annual policy (no fees) effective on `due`, its one invoice issued 10 days
    before by the invoicing job: (policy, invoice)."""
    policy = create_policy(
        api,
        policy_number=policy_number,
        effective_date=due.isoformat(),
        billing_plan="annual",
        currency=currency,
        lines=[pet_line(annual_premium=premium)],
        fees={"policy_fee": 0, "installment_fee": 0},
    )
    if holder:
        api.patch(f"/policyholders/{policy['policyholder_id']}", json=holder)
    run_job(db, settings, "issue_invoices", due - timedelta(days=10))
    (invoice,) = api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"]
    assert invoice["total"] == premium
    return policy, invoice


def pay(api: Any, db: Any, settings: Any, invoice: dict[str, Any], amount: int, on: date) -> int:
    """A check from the policyholder keyed in, allocated to the invoice on `on`: its id."""
    response = api.post(
        "/payments",
        json={
            "amount": amount,
            "currency": invoice["currency"],
            "method": "check",
            "received_on": on.isoformat(),
            "policyholder_id": invoice["policyholder_id"],
        },
    )
    assert response.status_code == 201, response.text
    with db.session() as session:
        posting.allocate(
            session,
            settings,
            number(response.json()["id"]),
            [(number(invoice["id"]), amount)],
            on=on,
            auto_write_off=False,
        )
    return number(response.json()["id"])


def assert_aging_is_the_journal(db: Any, first: date, last: date) -> None:
    """On every day from `first` to `last`, each currency's aging total is the balance of
    premium receivable in the trial balance of that day (the journal summed forwards)."""
    day = first
    with db.session() as session:
        while day <= last:
            journal = {
                block["currency"]: row["balance"]
                for block in trial_balance(session, day)["currencies"]
                for row in block["accounts"]
                if row["account"] == "premium_receivable" and row["balance"]
            }
            owed = {t.currency: t.total for t in aging_totals(session, day)}
            assert (day, owed) == (day, journal)
            day += timedelta(days=1)


def aging(api: Any, as_of: date | None = None, **params: Any) -> dict[str, Any]:
    if as_of is not None:
        params["as_of"] = as_of.isoformat()
    response = api.get("/reports/aging", params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def buckets(item: dict[str, Any]) -> dict[str, int]:
    return {b: item[b] for b in BUCKETS if item[b]}


def test_each_boundary_day_lands_in_its_bucket(api, db, settings):
    """Days past due = as_of − due date: ≤ 0 current, 1–30, 31–60, 61–90, 91+."""
    policy, invoice = book(api, db, settings, "AGE-1")
    expected = {
        -10: "current",  # the issue day
        0: "current",
        1: "1_30",
        30: "1_30",
        31: "31_60",
        60: "31_60",
        61: "61_90",
        90: "61_90",
        91: "over_90",
        400: "over_90",
    }
    for days, bucket in expected.items():
        report = aging(api, DUE + timedelta(days=days))
        (usd,) = report["currencies"]
        assert (days, buckets(usd)) == (days, {bucket: 10000})
        assert (usd["currency"], usd["total"], usd["invoices"]) == ("USD", 10000, 1)
        (row,) = report["data"]
        assert (days, buckets(row)) == (days, {bucket: 10000})
        assert row["policy_id"] == policy["id"]
        assert row["policy_number"] == "AGE-1"
        assert row["policyholder_id"] == invoice["policyholder_id"]
        assert row["oldest_due_date"] == DUE.isoformat()
        assert row["days_past_due"] == days
        assert row["delinquency_state"] == "active"
        assert report["has_more"] is False
    # The day before its issue the invoice did not exist.
    before = aging(api, DUE - timedelta(days=11))
    assert (before["currencies"], before["data"]) == ([], [])


def test_an_invoice_paid_later_is_still_owed_as_of_before(api, db, settings):
    _, invoice = book(api, db, settings, "AGE-2")
    pay(api, db, settings, invoice, 10000, DUE + timedelta(days=40))
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"
    (usd,) = aging(api, DUE + timedelta(days=39))["currencies"]
    assert buckets(usd) == {"31_60": 10000}
    paid = aging(api, DUE + timedelta(days=40))
    assert (paid["currencies"], paid["data"]) == ([], [])
    today = aging(api)  # default: today
    assert (today["currencies"], today["data"]) == ([], [])


def test_a_partly_paid_invoice_ages_by_its_remainder(api, db, settings):
    _, invoice = book(api, db, settings, "AGE-3")
    pay(api, db, settings, invoice, 4000, DUE + timedelta(days=10))
    with db.session() as session:
        writeoffs.write_off(
            session, settings, number(invoice["id"]), "small", on=DUE + timedelta(days=50)
        )
    steps = {
        5: {"1_30": 10000},  # before the payment
        10: {"1_30": 6000},
        45: {"31_60": 6000},
        49: {"31_60": 6000},
        50: {},  # written off
    }
    for days, expected in steps.items():
        report = aging(api, DUE + timedelta(days=days))
        totals = report["currencies"][0] if report["currencies"] else None
        assert (days, buckets(totals) if totals else {}) == (days, expected)
        assert (days, [buckets(r) for r in report["data"]]) == (
            days,
            [expected] if expected else [],
        )
    assert_aging_is_the_journal(db, DUE - timedelta(days=12), DUE + timedelta(days=52))


def test_oldest_due_date_and_buckets_of_a_policy_with_several_invoices(api, db, settings):
    """A monthly policy: each invoice in its own bucket; the row's oldest due date is the
    oldest still owed (the first, once paid, no longer counts)."""
    policy = create_policy(
        api,
        policy_number="AGE-M",
        effective_date="2026-01-15",
        lines=[pet_line(annual_premium=12000)],
        fees={"policy_fee": 0, "installment_fee": 0},
    )
    for day in ("2026-01-15", "2026-02-15", "2026-03-15", "2026-04-15"):
        run_job(db, settings, "issue_invoices", date.fromisoformat(day))
    invoices = sorted(
        api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"],
        key=lambda i: i["due_date"],
    )
    assert [i["due_date"] for i in invoices][:4] == [
        "2026-01-15",
        "2026-02-15",
        "2026-03-15",
        "2026-04-15",
    ]
    as_of = date(2026, 4, 20)  # 95, 64, 36 and 5 days past due
    (row,) = aging(api, as_of)["data"]
    assert buckets(row) == {"1_30": 1000, "31_60": 1000, "61_90": 1000, "over_90": 1000}
    assert (row["oldest_due_date"], row["days_past_due"], row["total"]) == ("2026-01-15", 95, 4000)
    pay(api, db, settings, invoices[0], 1000, date(2026, 4, 20))
    (row,) = aging(api, as_of)["data"]
    assert buckets(row) == {"1_30": 1000, "31_60": 1000, "61_90": 1000}
    assert (row["oldest_due_date"], row["days_past_due"]) == ("2026-02-15", 64)
    (row,) = aging(api, date(2026, 4, 19))["data"]  # the day before the payment
    assert row["oldest_due_date"] == "2026-01-15"


def test_a_payment_undone_later_was_a_payment_then(api, db, settings):
    """Paid on day 10, the allocation undone on day 20: owed before day 10 and from day 20,
    owing nothing in between (no row: a page skips the policy and still fills up)."""
    _, paid = book(api, db, settings, "AGE-P1")
    payment = pay(api, db, settings, paid, 10000, DUE + timedelta(days=10))
    with db.session() as session:
        posting.unallocate(session, settings, payment, on=DUE + timedelta(days=20))
    book(api, db, settings, "AGE-P2", premium=3000)
    book(api, db, settings, "AGE-P3", premium=2000)
    owed = {5: 15000, 10: 5000, 19: 5000, 20: 15000}
    for days, total in owed.items():
        (usd,) = aging(api, DUE + timedelta(days=days))["currencies"]
        assert (days, usd["total"]) == (days, total)
    page = aging(api, DUE + timedelta(days=15), limit=1)
    assert ([r["policy_number"] for r in page["data"]], page["has_more"]) == (["AGE-P2"], True)
    after = page["data"][0]["policy_id"]
    rest = aging(api, DUE + timedelta(days=15), limit=1, starting_after=after)
    assert ([r["policy_number"] for r in rest["data"]], rest["has_more"]) == (["AGE-P3"], False)
    page = aging(api, DUE + timedelta(days=25), limit=1)
    assert ([r["policy_number"] for r in page["data"]], page["has_more"]) == (["AGE-P1"], True)
    assert_aging_is_the_journal(db, DUE - timedelta(days=12), DUE + timedelta(days=22))


def test_currencies_apart_currency_filter_and_pages(api, db, settings):
    book(api, db, settings, "AGE-U1", premium=10000)
    book(api, db, settings, "AGE-U2", premium=20000)
    eur, _ = book(api, db, settings, "AGE-E1", premium=7000, currency="EUR")
    as_of = DUE + timedelta(days=31)
    report = aging(api, as_of)
    assert [(c["currency"], buckets(c), c["invoices"]) for c in report["currencies"]] == [
        ("EUR", {"31_60": 7000}, 1),
        ("USD", {"31_60": 30000}, 2),
    ]
    assert [r["policy_number"] for r in report["data"]] == ["AGE-U1", "AGE-U2", "AGE-E1"]
    only = aging(api, as_of, currency="eur")
    assert [c["currency"] for c in only["currencies"]] == ["EUR"]
    assert [r["policy_id"] for r in only["data"]] == [eur["id"]]
    first = aging(api, as_of, limit=2)
    assert ([r["policy_number"] for r in first["data"]], first["has_more"]) == (
        ["AGE-U1", "AGE-U2"],
        True,
    )
    rest = aging(api, as_of, limit=2, starting_after=first["data"][-1]["policy_id"])
    assert ([r["policy_number"] for r in rest["data"]], rest["has_more"]) == (["AGE-E1"], False)
    assert rest["currencies"] == report["currencies"]  # totals are the whole book's


def test_csv_download(api, db, settings):
    book(api, db, settings, "AGE-C1", premium=12345, name="=HYPERLINK(1)")
    book(api, db, settings, "AGE-C2", premium=500, currency="JPY")
    response = api.get(
        "/reports/aging", params={"as_of": (DUE + timedelta(days=61)).isoformat(), "format": "csv"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="aging-2026-05-01.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["policy_number"], r["currency"], r["61_90"], r["total"]) for r in rows] == [
        ("AGE-C1", "USD", "123.45", "123.45"),
        ("AGE-C2", "JPY", "500", "500"),
    ]
    assert rows[0]["policyholder_name"] == "'=HYPERLINK(1)"  # never a formula
    assert (rows[0]["days_past_due"], rows[0]["current"]) == ("61", "0.00")
    assert list(rows[0])[:4] == ["policy_id", "policy_number", "policyholder_id",
                                 "policyholder_name"]  # fmt: skip
    only = api.get("/reports/aging", params={"format": "csv", "currency": "JPY",
                                              "as_of": "2026-05-01"})  # fmt: skip
    assert only.headers["Content-Disposition"].endswith('aging-2026-05-01-JPY.csv"')
    assert [r["policy_number"] for r in csv.DictReader(io.StringIO(only.text))] == ["AGE-C2"]


def test_bad_input_is_a_422_naming_the_field(api):
    for params, name in (
        ({"as_of": "2026-02-30"}, "as_of"),
        ({"as_of": "0001-01-01"}, "as_of"),
        ({"currency": "XYZ"}, "currency"),
        ({"format": "xml"}, "format"),
        ({"limit": "0"}, "limit"),
        ({"starting_after": "ph_1"}, "starting_after"),
    ):
        response = api.get("/reports/aging", params=params)
        assert response.status_code == 422, (params, response.text)
        assert name in response.json()["errors"], response.text
