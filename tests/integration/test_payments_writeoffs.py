"""Write-offs over real HTTP: by hand, and automatic for an underpayment within tolerance."""

from __future__ import annotations

from tests.integration.ledger_helpers import (
    allocate,
    invoice,
    issue_invoice,
    ledger_problems,
    new_policy,
    pay,
)


def test_manual_write_off_settles_the_remainder(api, db):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 20000)
    payment = pay(api, 5000)
    allocate(api, payment["id"], (inv, 5000))
    response = api.post(f"/invoices/{inv}/write-off", json={"reason": "hardship"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["amount_written_off"] == 15000 and body["amount_due"] == 0
    assert body["status"] == "written_off"
    assert invoice(api, inv)["status"] == "written_off"
    again = api.post(f"/invoices/{inv}/write-off", json={"reason": "twice"})
    assert again.status_code == 409
    tb = api.get("/reports/trial-balance", params={"as_of": "2099-12-31"}).json()
    accounts = {row["account"]: row for row in tb["currencies"][0]["accounts"]}
    assert accounts["writeoff_expense"]["balance"] == 15000
    assert accounts["premium_receivable"]["balance"] == 0
    assert ledger_problems(db) == []


def test_write_off_of_unknown_or_void_invoice(api, db):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 1000)
    assert api.post(f"/invoices/{inv}/void", json={"reason": "wrong"}).status_code == 200
    assert api.post(f"/invoices/{inv}/write-off", json={}).status_code == 409
    assert api.post("/invoices/inv_987654/write-off", json={}).status_code == 404
    assert ledger_problems(db) == []


def test_small_underpayment_is_written_off_automatically(api, db):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 10000)
    payment = pay(api, 9950)
    assert allocate(api, payment["id"], (inv, 9950)).status_code == 201
    settled = invoice(api, inv)
    assert settled["amount_due"] == 0 and settled["amount_written_off"] == 50
    assert settled["status"] == "paid"
    assert ledger_problems(db) == []
    # Undoing the match also reverses the write-off it caused.
    api.delete(f"/payments/{payment['id']}/allocations")
    reopened = invoice(api, inv)
    assert (reopened["amount_written_off"], reopened["amount_due"], reopened["status"]) == (
        0,
        10000,
        "open",
    )
    assert ledger_problems(db) == []


def test_percent_tolerance_and_beyond_tolerance(api, db):
    policy = new_policy(api)
    big = issue_invoice(db, policy["id"], 50000)  # 1% = 500 > 1.00
    payment = pay(api, 49600)
    allocate(api, payment["id"], (big, 49600))
    assert invoice(api, big)["amount_written_off"] == 400
    other = issue_invoice(db, policy["id"], 5000)  # 1% = 50, absolute 100
    short = pay(api, 4800)
    allocate(api, short["id"], (other, 4800))
    left = invoice(api, other)
    assert (left["amount_written_off"], left["amount_due"], left["status"]) == (
        0,
        200,
        "partially_paid",
    )
    assert ledger_problems(db) == []


def test_no_automatic_write_off_while_the_payment_has_money_left_or_when_disabled(api, db):
    policy = new_policy(api)
    first = issue_invoice(db, policy["id"], 10000)
    second = issue_invoice(db, policy["id"], 10000)
    payment = pay(api, 20000)
    allocate(api, payment["id"], (first, 9950))
    assert invoice(api, first)["amount_written_off"] == 0  # 50 still unapplied
    disabled = pay(api, 9990)
    allocate(api, disabled["id"], (second, 9990), auto_write_off=False)
    assert invoice(api, second)["amount_due"] == 10
    assert ledger_problems(db) == []
