"""A short payment gets one verdict, whether the matcher or posting looks at it (issue 11):
200.50 paid 198.49 leaves 2.01, above 1.00 and above 1% of 200.50 — a partial payment, not
a write-off the posting would refuse ("invoice changed"); paid 198.50, the 2.00 left is
within 1% and written off, on every road."""

from __future__ import annotations

from tests.integration.ledger_helpers import ledger_problems
from tests.integration.recon_helpers import csv_file, holder_with_invoices, upload


def _payment(api, external_id):
    return next(p for p in api.get("/payments").json()["data"] if p["external_id"] == external_id)


def test_the_matcher_and_posting_agree_on_a_short_payment(api, db):
    _, [(partial_inv, partial_num)] = holder_with_invoices(api, db, "Ann Lee", [20050])
    _, [(within_inv, within_num)] = holder_with_invoices(api, db, "Raj Patel", [20050])
    upload(
        api,
        csv_file(
            f"2026-02-03,198.49,USD,Ann Lee,{partial_num},B-1",
            f"2026-02-03,198.50,USD,Raj Patel,{within_num},B-2",
        ),
    )
    run = api.post("/reconciliation/runs", json={"as_of": "2026-02-10"}).json()
    assert (run["matched"], run["partially_matched"], run["suspense"]) == (1, 1, 0), run
    partial = api.get(f"/invoices/{partial_inv}").json()
    assert (partial["status"], partial["amount_paid"], partial["amount_due"]) == (
        "partially_paid",
        19849,
        201,
    )
    within = api.get(f"/invoices/{within_inv}").json()
    assert (within["status"], within["amount_paid"], within["amount_due"]) == ("paid", 19850, 0)
    assert _payment(api, "B-1")["status"] == "applied"
    assert _payment(api, "B-2")["status"] == "applied"
    # A person allocating the same amounts by hand gets the same outcome from the engine.
    _, [(manual_inv, _)] = holder_with_invoices(api, db, "Eva Schmidt", [20050])
    body = {"amount": 19849, "currency": "USD", "method": "check", "received_on": "2026-02-04"}
    paid = api.post("/payments", json=body).json()
    manual = api.post(
        f"/payments/{paid['id']}/allocations",
        json={"allocations": [{"invoice_id": manual_inv, "amount": 19849}]},
    )
    assert manual.status_code in (200, 201), manual.text
    by_hand = api.get(f"/invoices/{manual_inv}").json()
    assert (by_hand["status"], by_hand["amount_due"]) == ("partially_paid", 201)
    assert ledger_problems(db) == []
