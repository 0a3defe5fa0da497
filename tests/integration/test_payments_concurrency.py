"""Racing allocations on PostgreSQL, over real HTTP: never over-allocated."""

from __future__ import annotations

import threading

import pytest

from tests.integration.ledger_helpers import (
    allocate,
    invoice,
    issue_invoices,
    ledger_problems,
    new_policy,
    pay,
)

ROUNDS = 8


def _race(*calls):
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.postgresql_only
def test_two_allocations_of_one_payment_racing(api, db, backend):
    policy = new_policy(api)
    for _ in range(ROUNDS):
        first, second = issue_invoices(db, policy["id"], [7000, 7000])
        payment = pay(api, 7000)
        a, b = _race(
            lambda p=payment, i=first: allocate(api, p["id"], (i, 7000)),
            lambda p=payment, i=second: allocate(api, p["id"], (i, 7000)),
        )
        assert sorted([a.status_code, b.status_code]) == [201, 422], (a.text, b.text)
        after = api.get(f"/payments/{payment['id']}").json()
        assert after["amount_unapplied"] == 0 and after["amount_allocated"] == 7000
        assert invoice(api, first)["amount_paid"] + invoice(api, second)["amount_paid"] == 7000
    assert ledger_problems(db) == []


@pytest.mark.postgresql_only
def test_two_payments_racing_for_one_invoice(api, db, backend):
    policy = new_policy(api)
    for _ in range(ROUNDS):
        (target,) = issue_invoices(db, policy["id"], [5000])
        one, two = pay(api, 5000), pay(api, 5000)
        a, b = _race(
            lambda p=one, i=target: allocate(api, p["id"], (i, 5000)),
            lambda p=two, i=target: allocate(api, p["id"], (i, 5000)),
        )
        assert sorted([a.status_code, b.status_code]) == [201, 422], (a.text, b.text)
        settled = invoice(api, target)
        assert settled["amount_paid"] == 5000 and settled["status"] == "paid"
    assert ledger_problems(db) == []


@pytest.mark.postgresql_only
def test_refund_racing_an_allocation(api, db, backend):
    policy = new_policy(api)
    for _ in range(ROUNDS):
        (target,) = issue_invoices(db, policy["id"], [3000])
        payment = pay(api, 3000)
        a, b = _race(
            lambda p=payment, i=target: allocate(api, p["id"], (i, 3000)),
            lambda p=payment: api.post(f"/payments/{p['id']}/refunds", json={"amount": 3000}),
        )
        assert {a.status_code, b.status_code} <= {201, 422}
        after = api.get(f"/payments/{payment['id']}").json()
        assert after["amount_refunded"] == 3000 and after["amount_allocated"] == 0
        assert invoice(api, target)["amount_due"] == 3000
    assert ledger_problems(db) == []
