"""Oldest debt first (issue 12, item 3), over real HTTP on every backend: a payment that names
one installment of a policy while an older one is open settles the oldest first, on every
road (a bank file and a reconciliation run, a payment keyed by hand then matched, a Stripe
payment through the fake Stripe and its webhook, the webhook drain); its evidence keeps the
named invoice; ALLOCATION_ORDER=as_named pays the named one; a person's explicit allocation
stands as given. `ledger check` and `audit verify` pass after each."""

from __future__ import annotations

import json
import time
from datetime import date

import pytest
from sqlalchemy import select

from devtools.fake_stripe import FakeStripe
from premium_billing.config import Settings
from premium_billing.invoicing.models import Invoice
from premium_billing.jobs.runner import run_job
from premium_billing.payments.models import Payment
from tests.factories import create_policy
from tests.integration.ledger_helpers import (
    allocate,
    cli,
    issue_invoices,
    new_holder,
    new_policy,
    number,
    pay,
)
from tests.integration.recon_helpers import csv_file, upload
from webhooks import drain as webhook_drain
from webhooks import inbox as webhook_events

from .stripe_helpers import fake, stripe, stripe_payments, stripe_settings  # noqa: F401

DUES = ("2026-01-01", "2026-02-01", "2026-03-01")


@pytest.fixture
def allocation_order() -> str:
    return "oldest_first"


@pytest.fixture
def settings(database_url: str, fake: FakeStripe, allocation_order: str) -> Settings:  # noqa: F811
    return stripe_settings(database_url, fake, allocation_order=allocation_order)


def _installments(api, db, name="Ann Lee", totals=(5000, 5000, 5000)):
    """A policyholder with one policy and an open invoice per month: [(id, number)], oldest
    first."""
    holder = new_holder(api, name=name)
    policy = new_policy(api, holder["id"])
    ids = [
        issue_invoices(db, policy["id"], [t], due=d)[0]
        for t, d in zip(totals, DUES[: len(totals)], strict=True)
    ]
    with db.session() as s:
        return [(i, s.get(Invoice, number(i)).number) for i in ids]


def _run(api, as_of="2026-03-10"):
    response = api.post("/reconciliation/runs", json={"as_of": as_of})
    assert response.status_code == 201, response.text
    return response.json()


def _payment(api, external_id):
    found = api.get("/payments?limit=500").json()["data"]
    return next(p for p in found if p["external_id"] == external_id)


def _invoice(api, invoice_id):
    inv = api.get(f"/invoices/{invoice_id}").json()
    return inv["status"], inv["amount_due"]


def _books_hold(database_url):
    for command in (("ledger", "check"), ("audit", "verify")):
        result = cli(database_url, *command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)


def test_a_bank_payment_naming_a_later_installment_settles_the_oldest(api, db, database_url):
    (i1, _), (i2, _), (i3, n3) = _installments(api, db)
    (k1, _), (k2, k2_num) = _installments(api, db, "Raj Patel", (3000, 3000))
    upload(
        api,
        csv_file(
            f"2026-03-02,50.00,USD,Ann Lee,Premium {n3},B-1",
            f"2026-03-02,29.50,USD,Raj Patel,{k2_num},B-2",  # short by 0.50: written off
        ),
    )
    run = _run(api)
    assert (run["matched"], run["suspense"], run["stats"]["written_off"]) == (2, 0, 1)
    ann = _payment(api, "B-1")
    assert ann["allocations"] == [{"invoice_id": i1, "amount": 5000}]
    evidence = ann["match"]["evidence"]
    assert ann["match"]["rule"] == "reference"
    assert evidence["named_invoices"] == [i3] and evidence["allocation_order"] == "oldest_first"
    assert evidence["reference"] == n3.replace("-", "")
    assert [_invoice(api, i) for i in (i1, i2, i3)] == [("paid", 0), ("open", 5000),
                                                         ("open", 5000)]  # fmt: skip
    raj = _payment(api, "B-2")
    assert raj["allocations"] == [{"invoice_id": k1, "amount": 2950}]
    assert raj["match"]["evidence"]["write_offs"] == [[k1, 50]]
    assert _invoice(api, k1) == ("paid", 0) and _invoice(api, k2) == ("open", 3000)
    _books_hold(database_url)


def test_two_payments_of_one_run_settle_the_installments_in_turn(api, db, database_url):
    """Both name an installment; the first naming the third takes the first, the second
    naming the first (paid by then) takes the next: the policyholder who paid two
    installments owes the third, and nothing waits in suspense."""
    (i1, n1), (i2, _), (i3, n3) = _installments(api, db)
    upload(
        api,
        csv_file(
            f"2026-03-02,50.00,USD,Ann Lee,{n3},B-1",
            f"2026-03-03,50.00,USD,Ann Lee,Invoice {n1},B-2",
            f"2026-03-03,20.00,USD,Ann Lee,Part of {n3},B-3",  # partial: on what is left
        ),
    )
    run = _run(api)
    assert (run["matched"], run["partially_matched"], run["suspense"]) == (2, 1, 0)
    assert _payment(api, "B-1")["allocations"] == [{"invoice_id": i1, "amount": 5000}]
    second = _payment(api, "B-2")
    assert second["allocations"] == [{"invoice_id": i2, "amount": 5000}]
    assert second["match"]["evidence"]["named_invoices"] == [i1]
    assert _payment(api, "B-3")["allocations"] == [{"invoice_id": i3, "amount": 2000}]
    assert [_invoice(api, i) for i in (i1, i2, i3)] == [("paid", 0), ("paid", 0),
                                                         ("partially_paid", 3000)]  # fmt: skip
    _books_hold(database_url)


def test_a_short_payment_moved_onto_a_partly_paid_installment_keeps_its_write_off(
    api, db, database_url
):
    """bench-reconcile's false short payments (100k x 100k: 81 of 3,138): a partial payment
    naming the third installment settled part of the first; a payment 0.50 short of the
    second, naming it, then settles the first's 30.00 and puts 19.50 on the second. The
    0.50 it was short is left on the first and written off there, as it would be on the
    second paid as named: the policy owes 80.00 (second 30.00, third 50.00), not 80.50."""
    (i1, _), (i2, n2), (i3, n3) = _installments(api, db)
    upload(
        api,
        csv_file(
            f"2026-03-02,20.00,USD,Ann Lee,Part of {n3},B-1",
            f"2026-03-03,49.50,USD,Ann Lee,{n2},B-2",
        ),
    )
    run = _run(api)
    assert (run["matched"], run["partially_matched"], run["suspense"]) == (1, 1, 0), run
    assert run["stats"]["written_off"] == 1
    assert _payment(api, "B-1")["allocations"] == [{"invoice_id": i1, "amount": 2000}]
    short = _payment(api, "B-2")
    assert short["status"] == "applied"
    assert sorted(short["allocations"], key=lambda a: a["invoice_id"]) == sorted(
        [{"invoice_id": i1, "amount": 2950}, {"invoice_id": i2, "amount": 2000}],
        key=lambda a: a["invoice_id"],
    )
    evidence = short["match"]["evidence"]
    assert evidence["write_offs"] == [[i1, 50]] and evidence["named_invoices"] == [i2]
    first = api.get(f"/invoices/{i1}").json()
    assert (first["status"], first["amount_paid"], first["amount_written_off"]) == (
        "paid",
        4950,
        50,
    )
    assert [_invoice(api, i) for i in (i2, i3)] == [("partially_paid", 3000), ("open", 5000)]
    _books_hold(database_url)


def test_a_payment_on_an_installment_the_order_part_paid_gets_posting_s_write_off(
    api, db, database_url
):
    """bench-reconcile's one "not posted" match (100k x 100k): the matcher judged a partial
    payment against its snapshot, but an earlier payment of the run, moved onto the named
    installment by the order, left it so little due that this one's remainder is within
    tolerance: 29.50 on the first installment's 30.00 leaves 0.50, which posting's rule
    writes off. The plan says so too and posts (was: refused, left in suspense)."""
    (i1, n1), (i2, _), (i3, n3) = _installments(api, db)
    upload(
        api,
        csv_file(
            f"2026-03-02,20.00,USD,Ann Lee,Part of {n3},B-1",
            f"2026-03-03,29.50,USD,Ann Lee,{n1},B-2",
        ),
    )
    run = _run(api)
    assert (run["partially_matched"], run["suspense"], run["stats"]["written_off"]) == (2, 0, 1)
    assert _payment(api, "B-1")["allocations"] == [{"invoice_id": i1, "amount": 2000}]
    second = _payment(api, "B-2")
    assert second["status"] == "applied"
    assert second["allocations"] == [{"invoice_id": i1, "amount": 2950}]
    assert second["match"]["evidence"]["write_offs"] == [[i1, 50]]
    assert [_invoice(api, i) for i in (i1, i2, i3)] == [("paid", 0), ("open", 5000),
                                                         ("open", 5000)]  # fmt: skip
    _books_hold(database_url)


def test_a_payment_keyed_by_hand_is_matched_oldest_first_and_a_person_allocation_stands(
    api, db, database_url
):
    (i1, _), (i2, n2), (i3, _) = _installments(api, db)
    keyed = pay(api, 5000, reference=f"Cheque for {n2}", payer_name="Ann Lee",
                received_on="2026-03-02")  # fmt: skip
    assert keyed["status"] == "unapplied" and keyed["allocations"] == []
    assert _run(api)["matched"] == 1
    matched = api.get(f"/payments/{keyed['id']}").json()
    assert matched["allocations"] == [{"invoice_id": i1, "amount": 5000}]
    assert matched["match"]["evidence"]["named_invoices"] == [i2]
    # A person allocates a cheque to the third installment, the second still open: it stands.
    cheque = pay(api, 5000, payer_name="Ann Lee", received_on="2026-03-03")
    response = allocate(api, cheque["id"], (i3, 5000))
    assert response.status_code == 201, response.text
    by_hand = response.json()
    assert by_hand["allocations"] == [{"invoice_id": i3, "amount": 5000}]
    assert by_hand["match"] == {"rule": "manual", "evidence": None}
    assert [_invoice(api, i) for i in (i1, i2, i3)] == [("paid", 0), ("open", 5000),
                                                         ("paid", 0)]  # fmt: skip
    _books_hold(database_url)


@pytest.mark.parametrize("allocation_order", ["as_named"])
def test_as_named_pays_the_named_installment(api, db, database_url, allocation_order):
    (i1, _), (i2, n2), _ = _installments(api, db)
    upload(api, csv_file(f"2026-03-02,50.00,USD,Ann Lee,{n2},B-1"))
    assert _run(api)["matched"] == 1
    paid = _payment(api, "B-1")
    assert paid["allocations"] == [{"invoice_id": i2, "amount": 5000}]
    assert "named_invoices" not in paid["match"]["evidence"]
    assert _invoice(api, i1) == ("open", 5000)
    _books_hold(database_url)


# ----------------------------------------------------------------------------- Stripe


def _stripe_installments(api, db, settings, n=2):
    """A monthly policy effective 10 March with its first `n` installments invoiced."""
    policy = create_policy(api, policy_number=f"PET-AO{time.monotonic_ns() % 10**9}",
                           effective_date="2026-03-10")  # fmt: skip
    run_job(db, settings, "issue_invoices", date(2026, 3 + n - 1, 10))
    invoices = api.get(f"/invoices?policy_id={policy['id']}").json()["data"]
    return sorted(invoices, key=lambda i: i["due_date"])[:n]


def _checkout(api, invoice):
    response = api.post(f"/invoices/{invoice['id']}/checkout")
    assert response.status_code == 200, response.text
    return response.json()["session_id"]


def _stripe_payment(db, pi_id):
    with db.session() as s:
        return s.scalar(select(Payment).where(Payment.external_id == pi_id))


def test_a_stripe_payment_for_a_later_installment_settles_the_oldest(
    api,
    db,
    settings,
    stripe,  # noqa: F811
    database_url,
):
    """The policyholder opens "Pay now" for March and for April, then pays April first:
    March is settled; paying March next settles April (its own installment was paid by
    then). A refund through Stripe re-opens what the refunded payment paid."""
    first, second = _stripe_installments(api, db, settings)
    amount = first["amount_due"]
    assert second["amount_due"] == amount
    later, earlier = _checkout(api, second), _checkout(api, first)
    assert stripe.pay(later) == 303
    stripe.wait_for_deliveries()
    assert _invoice(api, first["id"]) == ("paid", 0)
    assert _invoice(api, second["id"]) == ("open", amount)
    pi_later = stripe.get(later)["payment_intent"]
    paid = _stripe_payment(db, pi_later)
    assert paid.status == "applied" and paid.match_rule == "stripe_metadata"
    assert paid.match_evidence["named_invoices"] == [second["id"]]
    assert paid.match_evidence["metadata"]["invoice_id"] == second["id"]

    assert stripe.pay(earlier) == 303
    stripe.wait_for_deliveries()
    assert _invoice(api, second["id"]) == ("paid", 0)
    pi_earlier = stripe.get(earlier)["payment_intent"]
    again = api.get(f"/payments/pay_{_stripe_payment(db, pi_earlier).id}").json()
    assert again["status"] == "applied"
    assert again["allocations"] == [{"invoice_id": second["id"], "amount": amount}]
    assert again["match"]["evidence"]["named_invoices"] == [first["id"]]
    assert api.get("/reconciliation/suspense").json()["data"] == []
    _books_hold(database_url)

    charge = stripe.get(pi_earlier)["latest_charge"]
    stripe.refund_charge(charge, amount)
    stripe.wait_for_deliveries()
    refunded = api.get(f"/payments/{again['id']}").json()
    assert refunded["status"] == "refunded" and refunded["allocations"] == []
    assert _invoice(api, second["id"]) == ("open", amount)
    assert _invoice(api, first["id"]) == ("paid", 0)
    _books_hold(database_url)


@pytest.mark.parametrize("allocation_order", ["as_named"])
def test_as_named_a_stripe_payment_pays_its_installment(
    api,
    db,
    settings,
    stripe,  # noqa: F811
    allocation_order,
):
    first, second = _stripe_installments(api, db, settings)
    assert stripe.pay(_checkout(api, second)) == 303
    stripe.wait_for_deliveries()
    assert _invoice(api, second["id"]) == ("paid", 0)
    assert _invoice(api, first["id"]) == ("open", first["amount_due"])


def _event(tag: str, n: int, invoice: dict, amount: int) -> dict:
    created = int(time.mktime((2026, 4, 11, 12, 0, 0, 0, 0, 0)))
    obj = {
        "id": f"pi_{tag}_{n}", "object": "payment_intent", "amount": amount,
        "amount_received": amount, "currency": "usd", "status": "succeeded",
        "created": created, "latest_charge": f"ch_{tag}_{n}",
        "metadata": {"invoice_id": invoice["id"], "invoice_number": invoice["number"]},
    }  # fmt: skip
    return {"id": f"evt_{tag}_{n}", "object": "event", "created": created,
            "type": "payment_intent.succeeded", "data": {"object": obj}}  # fmt: skip


def _state(api, db, tag, invoices):
    with db.session() as s:
        pays = s.scalars(
            select(Payment).where(Payment.external_id.like(f"pi_{tag}_%"))
            .order_by(Payment.external_id)
        ).all()  # fmt: skip
        ids = {inv["id"]: n for n, inv in enumerate(invoices)}
        rows = []
        for p in pays:
            shown = api.get(f"/payments/pay_{p.id}").json()
            rows.append((p.external_id.rsplit("_", 1)[1], p.status,
                         [(ids[a["invoice_id"]], a["amount"]) for a in shown["allocations"]],
                         [ids[i] for i in (p.match_evidence or {}).get("named_invoices", [])],
                         (p.match_evidence or {}).get("unmatched")))  # fmt: skip
    return rows, [_invoice(api, inv["id"]) for inv in invoices]


def test_the_drain_settles_oldest_first_as_posting_each_event_in_turn(api, db, settings):
    """Events for the third, the first and the second installment of a policy (and a
    fourth payment more than the policy then owes): processed inline one by one, and queued
    then drained as one set-based batch on an equal policy, they end the same."""
    inline = _stripe_installments(api, db, settings, n=3)
    batched = _stripe_installments(api, db, settings, n=3)

    def events(tag, invs):
        due = invs[0]["amount_due"]
        return [_event(tag, 1, invs[2], due), _event(tag, 2, invs[0], due),
                _event(tag, 3, invs[1], invs[1]["amount_due"]),
                _event(tag, 4, invs[1], due)]  # fmt: skip

    for event in events("inl", inline):
        webhook_events.receive(db, settings, event, json.dumps(event))
    queued = settings.with_overrides(webhook_processing="deferred")
    for event in events("bat", batched):
        assert webhook_events.enqueue(db, queued, event, json.dumps(event)).status == "queued"
    assert webhook_drain.drain(db, queued) == 4
    expected, got = _state(api, db, "inl", inline), _state(api, db, "bat", batched)
    assert got == expected
    payments, invoices = got
    assert [p[1] for p in payments] == ["applied"] * 3 + ["unapplied"]
    assert [p[2] for p in payments[:3]] == [[(0, inline[0]["amount_due"])],
                                            [(1, inline[1]["amount_due"])],
                                            [(2, inline[2]["amount_due"])]]  # fmt: skip
    assert [p[3] for p in payments[:3]] == [[2], [0], [1]]
    assert payments[3][4] == "the invoice is paid"
    assert invoices == [("paid", 0)] * 3
