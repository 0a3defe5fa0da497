"""`make run`'s demo as a real process, on a small book: it loads once, simulates the year to
date, the books balance, the audit chain holds, and the book has what the demo promises."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import create_engine, func, select, text

from premium_billing.bootstrap import database
from premium_billing.db.engine import normalize_url
from premium_billing.http.keys import hash_key
from premium_billing.ledger.models import JournalEntry
from premium_billing.reports.aging import aging_totals
from premium_billing.reports.kpis import kpis, receivables_at
from tests.integration.dashboard_helpers import dashboard

TABLES = (
    "policyholders", "policies", "invoices", "payments", "allocations", "journal_entries",
    "bank_lines", "bank_statements", "job_runs", "refunds", "cancellations", "endorsements",
    "collection_steps", "notifications", "dashboard_users",
)  # fmt: skip
SIZE = "24"  # policyholders: the first eight alone hold every promise (demo/book.py)


def cli(database_url, secret_key, *args):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "STRIPE_SECRET_KEY": "",
        "DEMO_POLICYHOLDERS": SIZE,
        "SECRET_KEY": secret_key,
        "LOG_LEVEL": "warning",
    }
    return subprocess.run(
        [sys.executable, "-m", "premium_billing", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def query(database_url, sql):
    engine = create_engine(normalize_url(database_url))
    with engine.connect() as conn:
        rows = conn.execute(text(sql)).all()
    engine.dispose()
    return rows


def _suspense_from_the_lines(session, day):
    """Per currency, (payments, amount) with a non-zero `unapplied_cash` balance up to
    `day`, summed from every line (the definition, docs/kpis.md)."""
    rows = session.execute(
        text(
            "SELECT l.currency, count(*), -sum(b) FROM (SELECT l.currency, l.payment_id, "
            "sum(l.amount) AS b FROM journal_lines l JOIN journal_entries e "
            "ON e.id = l.entry_id WHERE l.account = 'unapplied_cash' AND e.occurred_on <= :d "
            "GROUP BY l.currency, l.payment_id HAVING sum(l.amount) <> 0) l GROUP BY l.currency"
        ),
        {"d": day},
    )
    return {currency: (int(n), int(amount)) for currency, n, amount in rows}


def counts(database_url):
    return {t: query(database_url, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


def test_demo_loads_the_year_once_and_the_books_and_audit_trail_check_out(
    database_url, settings, live_server
):
    first = cli(database_url, settings.secret_key, "demo")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert f"demo data loaded: {SIZE} policyholders" in out
    assert "simulated " in out and " job runs" in out
    assert "(balanced)" in out and "unbalanced" not in out
    assert out.strip().splitlines()[-1].startswith("try: curl")
    key = out.split("Bearer ", 1)[1].split('"', 1)[0]
    hashes = {h for (h,) in query(database_url, "SELECT key_hash FROM api_keys")}
    assert hash_key(key) in hashes  # the printed key works against this database

    # What the demo promises: every plan, both currencies, cats and dogs, an endorsement,
    # reconciled bank payments, a cancellation with a refund, a lapse and a reinstatement.
    plans = {p for (p,) in query(database_url, "SELECT DISTINCT billing_plan FROM policies")}
    assert plans == {"annual", "semiannual", "quarterly", "monthly"}
    currencies = {c for (c,) in query(database_url, "SELECT DISTINCT currency FROM invoices")}
    assert currencies == {"USD", "EUR"}
    species = {s for (s,) in query(database_url, "SELECT DISTINCT pet_species FROM premium_lines")}
    assert species == {"cat", "dog"}
    assert query(database_url, "SELECT count(*) FROM endorsements")[0][0] >= 1
    (matched,) = query(
        database_url,
        "SELECT count(*) FROM payments WHERE source = 'bank_statement' AND status = 'applied'",
    )[0]
    assert matched >= 10
    kinds = {
        (kind, reinstated is not None)
        for kind, reinstated in query(database_url, "SELECT kind, reinstated_on FROM cancellations")
    }
    assert ("cancellation", False) in kinds  # cancelled, and it stays so
    assert ("lapse", True) in kinds  # lapsed, arrears paid, reinstated
    assert query(database_url, "SELECT count(*) FROM refunds")[0][0] >= 1
    # Late payers chased by the collections job: reminders, notices, lapses, reinstatements.
    steps = {s for (s,) in query(database_url, "SELECT DISTINCT step FROM collection_steps")}
    assert {"reminder", "grace_notice", "final_notice", "lapse", "reinstatement"} <= steps
    statuses = {s for (s,) in query(database_url, "SELECT DISTINCT status FROM policies")}
    assert {"active", "cancelled"} <= statuses

    # The portal link it prints opens that policyholder's page (the served app, same key).
    link = next(line for line in out.splitlines() if line.startswith("portal of "))
    name = link[len("portal of ") :].split(" (good until", 1)[0]
    token = link.rsplit("/portal/", 1)[1]
    page = requests.get(f"{live_server.base_url}/portal/{token}", timeout=30)
    assert page.status_code == 200 and name in page.text

    # The dashboard login it prints logs in (a finance user).
    login = next(line for line in out.splitlines() if line.startswith("dashboard: "))
    user, password = login.split(" login ", 1)[1].split(" (also in", 1)[0].split(", password ")
    browser = dashboard(live_server.base_url)
    assert browser.login(user, password).status_code in (302, 303)
    assert browser.get("/dashboard/").status_code == 200

    loaded = counts(database_url)
    again = cli(database_url, settings.secret_key, "demo")
    assert again.returncode == 0, again.stderr
    assert "demo data already loaded" in again.stdout
    assert counts(database_url) == loaded  # nothing doubled, not even a job run
    for command in (("ledger", "check"), ("audit", "verify")):
        result = cli(database_url, settings.secret_key, *command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)

    # The KPIs' opening receivables (the account's balance from the day totals) are the
    # aging's totals of the same day, on every day of the simulated year.
    db = database(database_url)
    try:
        with db.session() as session:
            first_day, last_day = session.execute(
                select(func.min(JournalEntry.occurred_on), func.max(JournalEntry.occurred_on))
            ).one()
            day = first_day - timedelta(days=1)
            suspense_days = 0
            while day <= last_day + timedelta(days=1):
                aged = {t.currency: t.total for t in aging_totals(session, day)}
                assert receivables_at(session, day) == aged, day
                # Suspense that day, read backwards from the payments in suspense now, is
                # the suspense legs' balance per payment up to that day.
                held = {
                    k.currency: (k.suspense_count, k.suspense_amount)
                    for k in kpis(session, day, day, ZoneInfo("UTC"))
                    if k.suspense_count or k.suspense_amount
                }
                assert held == _suspense_from_the_lines(session, day), day
                suspense_days += bool(held)
                day += timedelta(days=1)
            assert suspense_days > 0  # the strangers' bank payments wait in suspense
    finally:
        db.dispose()
