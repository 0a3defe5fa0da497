"""Credit balances applied at issue, and reversals (chargebacks, bank returns)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import event

from premium_billing.config import Settings
from premium_billing.errors import Conflict
from premium_billing.payments import posting as payment_service
from premium_billing.payments.credits import apply_credit_balances
from tests.integration.ledger_helpers import (
    allocate,
    invoice,
    issue_invoice,
    issue_invoices,
    ledger_problems,
    new_holder,
    new_policy,
    number,
    pay,
)


def test_credit_is_applied_oldest_credit_first_to_a_batch(api, db):
    holder = new_holder(api)
    policy = new_policy(api, holder["id"])
    early = pay(api, 3000, policyholder_id=holder["id"], received_on="2026-01-02")
    late = pay(api, 4000, policyholder_id=holder["id"], received_on="2026-01-05")
    other_currency = pay(api, 999, policyholder_id=holder["id"], currency="EUR")
    first, second = issue_invoices(db, policy["id"], [5000, 5000], due="2026-03-01")
    credited = invoice(api, first)
    assert credited["amount_paid"] == 5000 and credited["status"] == "paid"
    assert [line["amount"] for line in credited["lines"] if line["kind"] == "credit"] == [-5000]
    rest = invoice(api, second)
    assert (rest["amount_paid"], rest["status"]) == (2000, "partially_paid")
    assert [line["amount"] for line in rest["lines"] if line["kind"] == "credit"] == [-2000]
    assert api.get(f"/payments/{early['id']}").json()["allocations"] == [
        {"invoice_id": first, "amount": 3000}
    ]
    assert api.get(f"/payments/{late['id']}").json()["amount_unapplied"] == 0
    assert api.get(f"/payments/{other_currency['id']}").json()["amount_unapplied"] == 999
    assert api.get(f"/policyholders/{holder['id']}").json()["credit_balance"] == 999
    assert ledger_problems(db) == []


def test_what_is_left_of_a_credit_waits_for_the_next_invoice(api, db):
    holder = new_holder(api)
    policy = new_policy(api, holder["id"])
    pay(api, 6000, policyholder_id=holder["id"])
    first = issue_invoice(db, policy["id"], 4000, due="2026-01-01")
    assert invoice(api, first)["status"] == "paid"
    assert api.get(f"/policyholders/{holder['id']}").json()["credit_balance"] == 2000
    second = issue_invoice(db, policy["id"], 4000, due="2026-02-01")
    assert invoice(api, second)["amount_due"] == 2000
    tb = api.get("/reports/trial-balance", params={"as_of": "2099-01-01"}).json()
    accounts = {row["account"]: row["balance"] for row in tb["currencies"][0]["accounts"]}
    assert accounts["customer_credit"] == 0
    assert accounts["premium_receivable"] == 2000
    assert ledger_problems(db) == []


def test_no_credit_costs_one_query(api, db):
    policy = new_policy(api)
    ids = [number(i) for i in issue_invoices(db, policy["id"], [100, 200], credit=False)]
    pay(api, 500)  # suspense: nobody's credit
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.session() as session:
            assert apply_credit_balances(session, ids) == 0
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 1 and "payments" in statements[0], statements
    assert apply_credit_balances.__doc__


def test_reversal_reopens_invoices_and_takes_the_money_back_out(api, db):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 7000)
    payment = pay(api, 9000)
    allocate(api, payment["id"], (inv, 7000))
    settings = Settings(database_url=db.url)
    with db.session() as session:
        reversed_payment = payment_service.reverse(
            session, settings, number(payment["id"]), on=date(2026, 2, 20), reason="R01"
        )
        assert reversed_payment.status == "reversed"
        assert reversed_payment.amount_reversed == 9000
    body = api.get(f"/payments/{payment['id']}").json()
    assert body["status"] == "reversed" and body["allocations"] == []
    assert invoice(api, inv)["status"] == "open"
    assert allocate(api, payment["id"], (inv, 1)).status_code == 409
    assert api.post(f"/payments/{payment['id']}/refunds", json={"amount": 1}).status_code == 409
    with db.session() as session, pytest.raises(Conflict):
        payment_service.reverse(session, settings, number(payment["id"]), on=date(2026, 2, 21))
    tb = api.get("/reports/trial-balance", params={"as_of": "2099-01-01"}).json()
    accounts = {row["account"]: row["balance"] for row in tb["currencies"][0]["accounts"]}
    assert accounts["cash_bank"] == 0 and accounts["premium_receivable"] == 7000
    assert ledger_problems(db) == []


def test_stripe_money_lands_in_stripe_clearing(api, db):
    with db.session() as session:
        payment = payment_service.create_payment(
            session,
            {
                "amount": 4800,
                "currency": "USD",
                "method": "card",
                "received_on": date(2026, 2, 1),
                "external_id": "pi_123",
            },
            source="stripe",
        )
        with pytest.raises(Conflict):
            payment_service.create_payment(
                session,
                {
                    "amount": 4800,
                    "currency": "USD",
                    "method": "card",
                    "received_on": date(2026, 2, 1),
                    "external_id": "pi_123",
                },
                source="stripe",
            )
    assert payment.source == "stripe"
    tb = api.get("/reports/trial-balance", params={"as_of": "2026-02-01"}).json()
    accounts = {row["account"]: row["balance"] for row in tb["currencies"][0]["accounts"]}
    assert accounts == {"stripe_clearing": 4800, "unapplied_cash": -4800}
    assert ledger_problems(db) == []
