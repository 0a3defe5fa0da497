"""Set-based posting (the posting engine, `payments.posting`): many receipts and matches in a
few statements, each checked against the locked, current amounts, with the same ledger as one
at a time."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from premium_billing.invoicing.models import Invoice
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.payments import posting as payments
from premium_billing.payments.models import Allocation, Payment, WriteOff
from premium_billing.payments.posting import Plan, Received, post, receive
from tests.integration.ledger_helpers import (
    issue_invoices,
    ledger_problems,
    new_holder,
    new_policy,
    number,
)

ON = date(2026, 2, 3)


def _invoices(api, db, totals, currency="USD"):
    holder = new_holder(api)
    policy = new_policy(api, holder["id"], currency=currency)
    return number(holder["id"]), [number(i) for i in issue_invoices(db, policy["id"], totals)]


def _suspense(db, *amounts, currency="USD"):
    with db.session() as s:
        ids = receive(
            s,
            [
                Received(amount=a, currency=currency, method="bank_transfer", received_on=ON,
                         external_id=f"BANK-{currency}-{i}-{a}", payer_name="J Smith")
                for i, a in enumerate(amounts)
            ],
            source="bank_statement",
        )  # fmt: skip
        s.commit()
    return ids


def test_receipts_and_matches_post_like_one_at_a_time(api, db, settings, backend):
    holder, (a, b, c) = _invoices(api, db, [10000, 5000, 20000])
    p1, p2, p3, p4 = _suspense(db, 10000, 6000, 19950, 700)
    with db.session() as s:
        refused = post(
            s,
            settings,
            [
                Plan(p1, [(a, 10000)], rule="reference", evidence={"score": 0.99}),
                Plan(p2, [(b, 5000)], rule="payer_name"),  # 1000 over: the payer's credit
                Plan(p3, [(c, 19950)], write_offs=[(c, 50)], rule="reference"),
                Plan(p4, [(a, 700)]),  # a is paid by p1 in this very batch
            ],
            on=ON,
        )
        s.commit()
    assert refused == {p4: f"invoice inv_{a} is paid"}
    with db.session() as s:
        inv = {i.id: i for i in s.scalars(select(Invoice).where(Invoice.id.in_([a, b, c])))}
        assert [(inv[i].status, inv[i].amount_due) for i in (a, b, c)] == [
            ("paid", 0), ("paid", 0), ("paid", 0)
        ]  # fmt: skip
        assert inv[c].amount_written_off == 50
        pay = {p.id: p for p in s.scalars(select(Payment).where(Payment.id.in_([p1, p2, p3, p4])))}
        assert pay[p1].status == "applied" and pay[p1].match_rule == "reference"
        assert pay[p1].match_evidence == {"score": "0.99"}  # floats kept exact, as text
        assert (pay[p2].status, pay[p2].amount_unapplied, pay[p2].policyholder_id) == (
            "partially_applied", 1000, holder
        )  # fmt: skip
        assert pay[p2].payer_from_match
        assert (pay[p4].status, pay[p4].policyholder_id) == ("unapplied", None)
        assert s.scalar(select(WriteOff.amount).where(WriteOff.payment_id == p3)) == 50
        kinds = set(s.scalars(select(JournalEntry.kind).join(JournalLine).where(
            JournalLine.payment_id.in_([p1, p2, p3]))))  # fmt: skip
        assert kinds == {ledger.PAYMENT_RECEIVED, ledger.PAYMENT_ALLOCATED}
    assert ledger_problems(db) == []
    # The batch's matches undo like any other: the money goes back to suspense.
    with db.session() as s:
        payments.unallocate(s, settings, p2, on=ON)
        payments.unallocate(s, settings, p3, on=ON)
    with db.session() as s:
        assert s.get(Invoice, b).amount_due == 5000 and s.get(Invoice, c).amount_due == 20000
        assert s.get(Payment, p2).policyholder_id is None
    assert ledger_problems(db) == []


def test_a_payment_with_a_known_payer_is_allocated_from_credit(api, db, settings, backend):
    holder, (a,) = _invoices(api, db, [4000])
    with db.session() as s:
        (pid,) = receive(
            s,
            [Received(amount=4000, currency="USD", method="card", received_on=ON,
                      external_id="pi_batch_1", policyholder_id=holder)],
            source="stripe",
        )  # fmt: skip
        assert post(s, settings, [Plan(pid, [(a, 4000)], rule="stripe")], on=ON) == {}
        s.commit()
    with db.session() as s:
        assert s.get(Invoice, a).status == "paid"
        assert s.scalar(select(Allocation.amount).where(Allocation.payment_id == pid)) == 4000
        accounts = set(s.scalars(select(JournalLine.account).where(JournalLine.payment_id == pid)))
        assert accounts == {
            ledger.STRIPE_CLEARING,
            ledger.CUSTOMER_CREDIT,
            ledger.PREMIUM_RECEIVABLE,
        }
    assert ledger_problems(db) == []


def test_refusals_name_the_reason_and_post_nothing_for_them(api, db, settings, backend):
    _, (usd,) = _invoices(api, db, [3000])
    _, (eur,) = _invoices(api, db, [3000], currency="EUR")
    p1, p2, p3 = _suspense(db, 3000, 3000, 100)
    with db.session() as s:
        payments.reverse(s, settings, p3, on=ON)
    with db.session() as s:
        refused = post(
            s,
            settings,
            [
                Plan(p1, [(eur, 3000)]),
                Plan(p2, [(usd, 2000)], write_offs=[(usd, 1000)]),  # beyond tolerance
                Plan(p3, [(usd, 100)]),
                Plan(10**9, [(usd, 100)]),
            ],
            on=ON,
        )
        s.commit()
    assert refused == {
        p1: f"invoice inv_{eur} is in EUR, the payment in USD",
        p2: f"invoice inv_{usd} changed: 1000 left due, not written off",
        p3: "the payment is reversed",
        10**9: "unknown payment",
    }
    with db.session() as s:
        assert s.get(Invoice, usd).amount_due == 3000
        assert s.scalar(select(Allocation.id).where(Allocation.payment_id.in_([p1, p2]))) is None
    assert ledger_problems(db) == []


@pytest.mark.postgresql_only
def test_the_balance_check_still_sees_a_line_added_after_a_check(db, backend):
    """The deferred check runs once per entry, but a line added later is checked again."""
    with db.session() as s:
        entry = JournalEntry(kind="payment_received", occurred_on=ON)
        s.add(entry)
        s.flush()
        legs = [("cash_bank", 5), ("unapplied_cash", -5)]
        s.add_all(JournalLine(entry_id=entry.id, account=a, currency="USD", amount=m)
                  for a, m in legs)  # fmt: skip
        s.flush()
        s.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))  # the check runs now: balanced
        s.execute(text("SET CONSTRAINTS ALL DEFERRED"))
        s.add(JournalLine(entry_id=entry.id, account="cash_bank", currency="USD", amount=7))
        s.flush()
        with pytest.raises(DBAPIError, match="does not balance"):
            s.commit()
