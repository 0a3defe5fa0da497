"""`journal_totals`: the journal's lines summed per business day, account, currency and entry
kind, kept by `ledger.journal` in each entry's transaction (what the KPIs read). Every road
keeps it equal to the lines; `ledger check` names a total that is not; two sessions adding
to the same day at once lose nothing; the migration back-fills it from older lines."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime

from sqlalchemy import create_engine, select, text

from premium_billing.bootstrap import database
from premium_billing.db.engine import normalize_url
from premium_billing.db.migrate import upgrade
from premium_billing.ledger.journal import (
    add_to_totals,
    post,
    totals_differences,
    write_totals,
)
from premium_billing.ledger.models import JournalTotal
from premium_billing.ledger.rules import Posting
from tests.integration.ledger_helpers import (
    allocate,
    issue_invoices,
    ledger_problems,
    new_holder,
    new_policy,
    pay,
)
from tests.integration.migration_helpers import empty_url  # noqa: F401 (a fixture)

# The lines summed by hand, in SQL of the test's own.
LINE_SUMS = """
SELECT e.occurred_on, l.account, l.currency, e.kind, sum(l.amount)
FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
GROUP BY e.occurred_on, l.account, l.currency, e.kind"""


def _day(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _line_sums(db) -> dict[tuple[date, str, str, str], int]:  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        return {(_day(on), a, c, k): int(s) for on, a, c, k, s in conn.execute(text(LINE_SUMS))}


def _totals(db) -> dict[tuple[date, str, str, str], int]:  # type: ignore[no-untyped-def]
    with db.session() as session:
        return {
            (t.occurred_on, t.account, t.currency, t.kind): t.amount
            for t in session.scalars(select(JournalTotal))
        }


def test_every_road_keeps_the_totals_equal_to_the_lines(api, db):
    holder = new_holder(api)
    policy = new_policy(api, holder["id"])
    first, second = issue_invoices(db, policy["id"], [10000, 7000], due="2026-02-01")
    (third,) = issue_invoices(db, policy["id"], [5000], due="2026-03-01")
    unknown = pay(api, 12000, received_on="2026-02-10")
    assert allocate(api, unknown["id"], (first, 10000), (second, 2000)).status_code == 201
    known = pay(api, 4000, received_on="2026-02-10", policyholder_id=holder["id"])
    assert allocate(api, known["id"], (third, 1500)).status_code == 201
    assert api.delete(f"/payments/{known['id']}/allocations").status_code == 200
    assert api.post(f"/payments/{known['id']}/refunds", json={"amount": 1000}).status_code == 201
    assert api.post(f"/invoices/{second}/write-off", json={"reason": "t"}).status_code == 201

    totals = _totals(db)
    assert totals == _line_sums(db)
    # By hand: February's billing, two payments received on the 10th, 12,000 collected.
    feb1, mar1 = date(2026, 2, 1), date(2026, 3, 1)
    assert totals[(feb1, "premium_billed", "USD", "invoice_issued")] == -17000
    assert totals[(mar1, "premium_receivable", "USD", "invoice_issued")] == 5000
    received = {k: v for k, v in totals.items() if k[3] == "payment_received"}
    assert sum(v for k, v in received.items() if k[1] == "cash_bank") == 16000
    allocated = [
        v for k, v in totals.items() if k[1] == "premium_receivable" and k[3] == "payment_allocated"
    ]
    assert sum(allocated) == -13500  # 12,000 and 1,500, on the business date
    assert ledger_problems(db) == []


def test_ledger_check_names_a_total_that_is_not_its_lines(api, db):
    policy = new_policy(api)
    issue_invoices(db, policy["id"], [2500], due="2026-04-01")
    assert ledger_problems(db) == []
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE journal_totals SET amount = amount + 1 WHERE account = 'premium_billed'")
        )
    assert ledger_problems(db) == [
        "journal total 2026-04-01 premium_billed USD invoice_issued: -2499, lines -2500"
    ]
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM journal_totals WHERE account = 'premium_billed'"))
    assert ledger_problems(db) == [
        "journal total 2026-04-01 premium_billed USD invoice_issued: 0, lines -2500"
    ]


def test_two_sessions_adding_to_the_same_day_lose_nothing(db):
    key = (date(2026, 5, 5), "cash_bank", "USD", "payment_received")
    with db.session() as session:
        add_to_totals(session, [(key, 100)])
        session.commit()
    done = threading.Event()

    def other() -> None:
        with db.session() as second:
            add_to_totals(second, [(key, 50)])  # waits for the first session's row lock
            second.commit()
        done.set()

    with db.session() as first:
        add_to_totals(first, [(key, 7), (key, 3)])
        write_totals(first)  # what its commit does first: the row is locked until then
        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.3)
        first.commit()
    thread.join(timeout=60)
    assert done.is_set()
    with db.session() as session:
        assert session.get(JournalTotal, key).amount == 160  # type: ignore[union-attr]


def test_a_savepoint_rolled_back_or_a_session_closed_adds_nothing(db):
    key = (date(2026, 7, 7), "cash_bank", "USD", "payment_received")
    with db.session() as session:
        add_to_totals(session, [(key, 1)])
        savepoint = session.begin_nested()
        add_to_totals(session, [(key, 20)])
        savepoint.rollback()
        kept = session.begin_nested()
        add_to_totals(session, [(key, 300)])
        kept.commit()
        session.commit()
    with db.session() as session:
        add_to_totals(session, [(key, 4000)])  # never committed
    with db.session() as session:
        add_to_totals(session, [(key, 50000)])
        session.rollback()
        session.commit()
    with db.session() as session:
        assert session.get(JournalTotal, key).amount == 301  # type: ignore[union-attr]


def test_a_batch_of_entries_adds_each_key_once(db):
    with db.session() as session:
        for amount in (300, 200):
            post(
                session,
                "payment_received",
                date(2026, 6, 1),
                [Posting("cash_bank", "EUR", amount), Posting("unapplied_cash", "EUR", -amount)],
            )
        session.commit()
    totals = _totals(db)
    assert totals[(date(2026, 6, 1), "cash_bank", "EUR", "payment_received")] == 500
    assert totals[(date(2026, 6, 1), "unapplied_cash", "EUR", "payment_received")] == -500
    assert totals == _line_sums(db)


def test_the_migration_back_fills_the_totals_from_older_lines(empty_url: str) -> None:  # noqa: F811
    upgrade(empty_url, "0009_dashboard")
    engine = create_engine(normalize_url(empty_url))
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    entries = (
        ("payment_received", "2026-05-30", (("cash_bank", 5000), ("unapplied_cash", -5000))),
        ("payment_received", "2026-05-30", (("cash_bank", 700), ("unapplied_cash", -700))),
        ("payment_received", "2026-05-31", (("cash_bank", 40), ("unapplied_cash", -40))),
    )
    with engine.begin() as conn:
        for kind, on, legs in entries:
            entry = conn.execute(
                text("INSERT INTO journal_entries (kind, occurred_on, created_at) "
                     "VALUES (:k, :on, :now) RETURNING id"),
                {"k": kind, "on": on, "now": now},
            ).scalar_one()  # fmt: skip
            for account, amount in legs:
                conn.execute(
                    text("INSERT INTO journal_lines (entry_id, account, currency, amount) "
                         "VALUES (:e, :a, 'USD', :m)"),
                    {"e": entry, "a": account, "m": amount},
                )  # fmt: skip
    engine.dispose()
    upgrade(empty_url)
    db = database(empty_url)
    try:
        with db.session() as session:
            assert totals_differences(session) == []  # ledger check's test of them
            totals = {
                (t.occurred_on.isoformat(), t.account): t.amount
                for t in session.scalars(select(JournalTotal))
            }
        assert totals == {
            ("2026-05-30", "cash_bank"): 5700,
            ("2026-05-30", "unapplied_cash"): -5700,
            ("2026-05-31", "cash_bank"): 40,
            ("2026-05-31", "unapplied_cash"): -40,
        }
    finally:
        db.dispose()
