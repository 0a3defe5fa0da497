"""Property: for any sequence of issue / pay / allocate / unallocate / refund / write-off,
over real HTTP, every entry balances, every invoice's amount due is its total minus its
allocations minus its write-offs, and `ledger check` finds nothing."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from premium_billing.payments.models import Allocation
from tests.integration.ledger_helpers import (
    allocate,
    issue_invoice,
    ledger_problems,
    new_holder,
    new_policy,
    number,
)

index = st.integers(min_value=0, max_value=50)
operation = st.one_of(
    st.tuples(st.just("issue"), st.integers(min_value=0, max_value=20000)),
    st.tuples(st.just("pay"), st.integers(min_value=1, max_value=30000), st.booleans()),
    st.tuples(st.just("allocate"), index, index, st.integers(min_value=1, max_value=25000)),
    st.tuples(st.just("unallocate"), index),
    st.tuples(st.just("refund"), index, st.integers(min_value=1, max_value=30000)),
    st.tuples(st.just("write_off"), index),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(operation, min_size=1, max_size=14))
def test_any_sequence_keeps_the_books_balanced(api, db, steps):
    holder = new_holder(api)
    policy = new_policy(api, holder["id"])
    invoices: list[str] = []
    payments: list[str] = []
    for step in steps:
        kind = step[0]
        if kind == "issue":
            invoices.append(issue_invoice(db, policy["id"], step[1]))
        elif kind == "pay":
            body = {"amount": step[1], "currency": "USD", "method": "ach"}
            body["received_on"] = "2026-02-03"
            if step[2]:
                body["policyholder_id"] = holder["id"]
            response = api.post("/payments", json=body)
            assert response.status_code == 201, response.text
            payments.append(response.json()["id"])
        elif kind == "allocate" and payments and invoices:
            payment = payments[step[1] % len(payments)]
            target = invoices[step[2] % len(invoices)]
            before = api.get(f"/payments/{payment}").json()
            due = api.get(f"/invoices/{target}").json()
            response = allocate(api, payment, (target, step[3]))
            fits = (
                step[3] <= before["amount_unapplied"]
                and step[3] <= due["amount_due"]
                and due["status"] != "void"
                and before["status"] != "reversed"
            )
            assert response.status_code == (201 if fits else 422), response.text
        elif kind == "unallocate" and payments:
            response = api.delete(f"/payments/{payments[step[1] % len(payments)]}/allocations")
            assert response.status_code == 200, response.text
        elif kind == "refund" and payments:
            payment = payments[step[1] % len(payments)]
            before = api.get(f"/payments/{payment}").json()
            refundable = before["amount"] - before["amount_refunded"] - before["amount_reversed"]
            response = api.post(f"/payments/{payment}/refunds", json={"amount": step[2]})
            assert response.status_code == (201 if step[2] <= refundable else 422), response.text
        elif kind == "write_off" and invoices:
            target = invoices[step[1] % len(invoices)]
            due = api.get(f"/invoices/{target}").json()["amount_due"]
            response = api.post(f"/invoices/{target}/write-off", json={"reason": "test"})
            assert response.status_code == (201 if due > 0 else 409), response.text

    with db.session() as session:
        allocated = dict(
            session.execute(
                select(Allocation.invoice_id, func.sum(Allocation.amount)).group_by(
                    Allocation.invoice_id
                )
            ).all()
        )
    for target in invoices:
        row = api.get(f"/invoices/{target}").json()
        assert row["amount_paid"] == allocated.get(number(target), 0)
        assert row["amount_due"] == row["total"] - row["amount_paid"] - row["amount_written_off"]
        assert 0 <= row["amount_due"] <= row["total"]
    for payment in payments:
        row = api.get(f"/payments/{payment}").json()
        assert row["amount_unapplied"] == (
            row["amount"] - row["amount_allocated"] - row["amount_refunded"]
        )
        assert row["amount_unapplied"] >= 0
        assert sum(a["amount"] for a in row["allocations"]) == row["amount_allocated"]
    trial = api.get("/reports/trial-balance", params={"as_of": "2099-12-31"}).json()
    assert all(c["balanced"] for c in trial["currencies"])
    assert ledger_problems(db) == []
