"""Settlements racing other money movements, over real HTTP: the database's locks and
constraints decide, nothing is settled twice and the books stay whole (both backends)."""

from __future__ import annotations

from .settlement_helpers import books_ok, cancel, invoices_of, issue, pay_by_check, policy_on
from .test_payments_concurrency import _race

ROUNDS = 4


def test_two_cancellations_racing_settle_once(api, db, settings):
    for round_ in range(ROUNDS):
        policy = policy_on(api, "annual", number=f"RACE-C{round_}")
        issue(db, settings, "2026-01-01")
        (invoice,) = invoices_of(api, policy["id"])
        pay_by_check(api, invoice)
        a, b = _race(
            lambda p=policy: cancel(api, p["id"], "2026-07-01"),
            lambda p=policy: cancel(api, p["id"], "2026-08-01", "short_rate"),
        )
        assert sorted([a.status_code, b.status_code]) == [201, 409], (a.text, b.text)
        owed = api.get("/refunds", params={"policyholder_id": policy["policyholder_id"]})
        assert len(owed.json()["data"]) == 1
    books_ok(db)


def test_marking_a_refund_paid_twice_at_once_pays_it_once(api, db, settings):
    for round_ in range(ROUNDS):
        policy = policy_on(api, "annual", number=f"RACE-M{round_}")
        issue(db, settings, "2026-01-01")
        (invoice,) = invoices_of(api, policy["id"])
        pay_by_check(api, invoice)
        (refund,) = cancel(api, policy["id"], "2026-07-01").json()["refunds"]
        url = f"/refunds/{refund['id']}/mark-paid"
        a, b = _race(
            lambda u=url: api.post(u, json={"method": "check", "reference": "A"}),
            lambda u=url: api.post(u, json={"method": "transfer", "reference": "B"}),
        )
        assert sorted([a.status_code, b.status_code]) == [200, 409], (a.text, b.text)
    books_ok(db)


def test_a_cancellation_racing_a_payment_of_its_invoice(api, db, settings):
    """Monthly, March open: a payment of March races the cancellation. Whichever comes
    first, the other sees it: paid first, the part beyond the earned premium is refunded;
    cancelled first, the payment meets the credited invoice (what is left, or a 422)."""
    for round_ in range(ROUNDS):
        policy = policy_on(api, "monthly", number=f"RACE-P{round_}")
        issue(db, settings, "2026-03-01")
        january, february, march = invoices_of(api, policy["id"])
        pay_by_check(api, january)
        pay_by_check(api, february)
        payment = api.post(
            "/payments",
            json={"amount": 8333, "currency": "USD", "method": "check",
                  "received_on": "2026-03-10", "policyholder_id": policy["policyholder_id"]},
        ).json()  # fmt: skip
        allocation, cancelled = _race(
            lambda p=payment, i=march: api.post(
                f"/payments/{p['id']}/allocations",
                json={"allocations": [{"invoice_id": i["id"], "amount": 8333}]},
            ),
            lambda p=policy: cancel(api, p["id"], "2026-03-15"),
        )
        assert cancelled.status_code == 201, cancelled.text
        assert allocation.status_code in (201, 422), allocation.text
        after = api.get(f"/invoices/{march['id']}").json()
        if allocation.status_code == 201:  # paid first: 50.03 refunded
            assert cancelled.json()["refund_due"] == 5003
            assert (after["amount_paid"], after["amount_due"]) == (3330, 0)
        else:  # cancelled first: the invoice asks only 33.30 now
            assert cancelled.json()["balance_due"] == 3330
            assert after["amount_due"] == 3330
    books_ok(db)
