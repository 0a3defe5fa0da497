"""A person's match and undo (reconciliation.manual) are each one transaction: when the
reconciliation bookkeeping fails for real (the database refuses its row), the allocation or
its undo is rolled back with it, and nothing is half-done."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import func, select, text

from premium_billing.ledger.models import JournalEntry
from premium_billing.payments.models import Allocation, Payment
from premium_billing.reconciliation.models import PayerLink, SuspenseItem
from tests.integration.ledger_helpers import (
    allocate,
    invoice,
    issue_invoice,
    ledger_problems,
    new_policy,
    number,
    pay,
)


@contextmanager
def refused_rows(db: Any, backend: str, table: str) -> Iterator[None]:
    """The database refuses any new or changed row of `table` (a trigger), until the end."""
    name = f"refuse_{table}"
    with db.engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(
                text(
                    "CREATE OR REPLACE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql "
                    "AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER {name} BEFORE INSERT OR UPDATE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_row()"
                )
            )
        else:
            for event in ("INSERT", "UPDATE"):
                conn.execute(
                    text(
                        f"CREATE TRIGGER {name}_{event.lower()} BEFORE {event} ON {table} "
                        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
                    )
                )
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            if backend == "postgresql":
                conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON {table}"))
                conn.execute(text("DROP FUNCTION IF EXISTS refuse_row()"))
            else:
                for event in ("insert", "update"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {name}_{event}"))


def _counts(db: Any, payment_id: int) -> tuple[int, int, int]:
    with db.session() as s:
        return (
            s.scalar(select(func.count()).where(Allocation.payment_id == payment_id)),
            s.scalar(select(func.count()).select_from(JournalEntry)),
            s.scalar(select(func.count()).select_from(PayerLink)),
        )


def test_a_manual_match_whose_bookkeeping_fails_posts_nothing(api, db, backend):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 6000)
    payment = pay(api, 6000, payer_name="Ann Lee")  # a match teaches the payer's name
    pid = number(payment["id"])
    before = _counts(db, pid)
    with refused_rows(db, backend, "payer_links"):
        response = allocate(api, payment["id"], (inv, 6000))
    assert response.status_code == 500, response.text
    assert _counts(db, pid) == before
    after = api.get(f"/payments/{payment['id']}").json()
    assert (after["status"], after["amount_unapplied"], after["policyholder_id"]) == (
        "unapplied", 6000, None,
    )  # fmt: skip
    assert after["allocations"] == [] and after["match"] is None
    assert (invoice(api, inv)["status"], invoice(api, inv)["amount_due"]) == ("open", 6000)
    assert ledger_problems(db) == []
    # With the bookkeeping possible again, the same match posts, and teaches the payer.
    assert allocate(api, payment["id"], (inv, 6000)).status_code == 201
    assert _counts(db, pid)[2] == before[2] + 1
    assert ledger_problems(db) == []


def test_an_undo_whose_bookkeeping_fails_undoes_nothing(api, db, backend):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 10000)  # matched 50 short: a tolerance write-off
    payment = pay(api, 9950)
    assert allocate(api, payment["id"], (inv, 9950)).status_code == 201
    matched = api.get(f"/payments/{payment['id']}").json()
    settled = invoice(api, inv)
    assert (settled["status"], settled["amount_written_off"]) == ("paid", 50)
    pid = number(payment["id"])
    before = _counts(db, pid)
    with refused_rows(db, backend, "suspense_items"):
        response = api.delete(f"/payments/{payment['id']}/allocations")
    assert response.status_code == 500, response.text
    assert _counts(db, pid) == before
    assert api.get(f"/payments/{payment['id']}").json() == matched
    assert invoice(api, inv) == settled
    with db.session() as s:
        assert s.get(SuspenseItem, pid) is None  # not held: nothing was undone
    assert ledger_problems(db) == []
    # Once possible, the undo reopens the invoice and holds the payment for a person.
    undone = api.delete(f"/payments/{payment['id']}/allocations")
    assert undone.status_code == 200, undone.text
    assert undone.json()["status"] == "unapplied" and undone.json()["policyholder_id"] is None
    assert invoice(api, inv)["amount_due"] == 10000
    with db.session() as s:
        item = s.get(SuspenseItem, pid)
        assert item is not None and item.held
        assert s.get(Payment, pid).match_rule is None
    assert ledger_problems(db) == []


def test_unknown_payment_and_refusals_keep_their_status_codes(api, db):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 1000)
    assert allocate(api, "pay_424242", (inv, 1)).status_code == 404
    assert api.delete("/payments/pay_424242/allocations").status_code == 404
    payment = pay(api, 500)
    over = allocate(api, payment["id"], (inv, 501))
    assert over.status_code == 422 and "allocations" in over.json()["errors"]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Allocation)) == 0
