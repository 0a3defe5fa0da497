"""The journal: balanced entries enforced by the database and in code, trial balance,
and `premium-billing ledger check` finding any difference from the books."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from premium_billing.db.engine import normalize_url
from premium_billing.ledger.journal import post
from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.ledger.rules import Posting, UnbalancedEntry
from tests.integration.ledger_helpers import (
    allocate,
    cli,
    issue_invoice,
    issue_invoices,
    ledger_problems,
    new_policy,
    pay,
)


def _books(api, db):
    policy = new_policy(api)
    first, second = issue_invoices(db, policy["id"], [10000, 7000], due="2026-02-01")
    payment = pay(api, 12000, received_on="2026-02-10")
    allocate(api, payment["id"], (first, 10000), (second, 2000))
    return policy, first, second, payment


def test_trial_balance_balances_and_follows_the_date(api, db):
    _books(api, db)
    before = api.get("/reports/trial-balance", params={"as_of": "2026-01-31"}).json()
    assert before == {"as_of": "2026-01-31", "currencies": []}
    tb = api.get("/reports/trial-balance", params={"as_of": "2026-02-05"}).json()
    (usd,) = tb["currencies"]
    assert usd["balanced"] and usd["total_debit"] == usd["total_credit"] == 17000
    accounts = {row["account"]: row["balance"] for row in usd["accounts"]}
    assert accounts == {"premium_billed": -17000, "premium_receivable": 17000}
    later = api.get("/reports/trial-balance", params={"as_of": "2099-01-01"}).json()
    accounts = {row["account"]: row["balance"] for row in later["currencies"][0]["accounts"]}
    assert accounts["premium_receivable"] == 5000
    assert accounts["cash_bank"] == 12000
    assert sum(accounts.values()) == 0
    assert api.get("/reports/trial-balance", params={"as_of": "yesterday"}).status_code == 422


def test_ledger_check_passes_then_names_a_tampered_invoice(api, db, database_url):
    _policy, first, _second, _payment = _books(api, db)
    ok = cli(database_url, "ledger", "check")
    assert ok.returncode == 0, ok.stderr
    invoice_id = int(first.split("_")[1])
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE invoices SET amount_paid = 9000, amount_due = 1000, status = "
                 "'partially_paid' WHERE id = :id"),
            {"id": invoice_id},
        )  # fmt: skip
    bad = cli(database_url, "ledger", "check")
    assert bad.returncode == 1
    assert "amount_paid 9000, journal 10000" in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ")


def test_ledger_check_names_a_tampered_payment_and_credit(api, db, database_url):
    holder_policy = new_policy(api)
    payment = pay(api, 3000, policyholder_id=holder_policy["policyholder_id"])
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE payments SET amount = 3500, amount_unapplied = 3500 WHERE id = :id"),
            {"id": int(payment["id"].split("_")[1])},
        )
    problems = ledger_problems(db)
    assert f"payment {payment['id']}: received 3500, journal 3000" in problems
    assert any(p.startswith("customer credit of") for p in problems)
    assert cli(database_url, "ledger", "check").returncode == 1


def test_ledger_check_names_a_tampered_payment_received_by_its_entry(db, settings):
    """A bank statement's payments share their entry's cash debit (one untagged line per
    currency): a payment's amount changed behind the journal's back is still named."""
    import io

    from sqlalchemy import func, select

    from premium_billing.payments.models import Payment
    from premium_billing.reconciliation.imports import import_statement
    from tests.integration.recon_helpers import csv_file

    rows = csv_file(
        "2026-02-03,10.00,USD,Ann Lee,a,B-1",
        "2026-02-03,20.00,EUR,Bob Roe,b,B-2",
        "2026-02-03,30.00,USD,Cy Doe,c,B-3",
        "2026-02-04,40.00,USD,Di Fox,d,B-4",
    )
    with db.session() as session:
        result = import_statement(session, settings, io.BytesIO(rows))
    assert result.payments_created == 4
    assert ledger_problems(db) == []
    with db.session() as session:
        cash = session.execute(
            select(JournalLine.entry_id, JournalLine.currency, JournalLine.amount)
            .where(JournalLine.account == "cash_bank")
            .order_by(JournalLine.entry_id, JournalLine.currency)
        ).all()
        assert [(c, a) for _, c, a in cash] == [("EUR", 2000), ("USD", 4000), ("USD", 4000)]
        assert session.scalar(
            select(func.count()).where(JournalLine.payment_id.is_not(None))
        ) == 4  # fmt: skip
        first_entry = session.scalar(
            select(Payment.receipt_entry_id).where(Payment.external_id == "B-1")
        )
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE payments SET amount = amount + 500, amount_unapplied = "
                 "amount_unapplied + 500 WHERE external_id = 'B-3'")
        )  # fmt: skip
    problems = ledger_problems(db)
    assert (
        f"journal entry {first_entry} (USD): cash debit 4000 but its payments received 4500"
        in problems
    ), problems
    assert any(p.startswith("suspense (USD)") for p in problems), problems


def test_code_refuses_an_unbalanced_entry(db):
    with db.session() as session, pytest.raises(UnbalancedEntry):
        post(
            session,
            "payment_received",
            date(2026, 1, 1),
            [Posting("cash_bank", "USD", 100), Posting("unapplied_cash", "USD", -90)],
        )


def test_journal_lines_are_append_only(api, db):
    policy = new_policy(api)
    issue_invoice(db, policy["id"], 1000)
    for statement in (
        "UPDATE journal_lines SET amount = amount + 1",
        "DELETE FROM journal_lines",
    ):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))
    assert ledger_problems(db) == []


@pytest.mark.postgresql_only
def test_postgresql_refuses_an_unbalanced_entry_at_commit(db, backend):
    with db.session() as session:
        entry = JournalEntry(kind="payment_received", occurred_on=date(2026, 1, 1))
        session.add(entry)
        session.flush()
        # Legs written one by one are fine until commit (the check is deferred)...
        session.add(JournalLine(entry_id=entry.id, account="cash_bank", currency="USD", amount=5))
        session.flush()
        with pytest.raises(DBAPIError, match="does not balance"):
            session.commit()
    with db.session() as session:
        entry = JournalEntry(kind="payment_received", occurred_on=date(2026, 1, 1))
        session.add(entry)
        session.flush()
        session.add_all(
            [
                JournalLine(entry_id=entry.id, account="cash_bank", currency="USD", amount=5),
                JournalLine(entry_id=entry.id, account="unapplied_cash", currency="EUR", amount=-5),
            ]
        )
        with pytest.raises(DBAPIError, match="does not balance"):
            session.commit()


def test_ledger_check_reports_an_unbalanced_entry_written_behind_its_back(db, backend):
    # SQLite cannot defer a check to commit: code checks every entry, and so does
    # `ledger check`. (On PostgreSQL the trigger is disabled to write it at all.)
    engine = create_engine(normalize_url(db.url))
    with engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(text("ALTER TABLE journal_lines DISABLE TRIGGER journal_lines_balance"))
        entry_id = conn.execute(
            text("INSERT INTO journal_entries (kind, occurred_on, created_at) "
                 "VALUES ('payment_received', '2026-01-01', '2026-01-01 00:00:00') RETURNING id")
        ).scalar_one()  # fmt: skip
        conn.execute(
            text("INSERT INTO journal_lines (entry_id, account, currency, amount) "
                 "VALUES (:e, 'cash_bank', 'USD', 7)"),
            {"e": entry_id},
        )  # fmt: skip
        if backend == "postgresql":
            conn.execute(text("ALTER TABLE journal_lines ENABLE TRIGGER journal_lines_balance"))
    engine.dispose()
    assert f"journal entry {entry_id} does not balance in USD: +7" in ledger_problems(db)
