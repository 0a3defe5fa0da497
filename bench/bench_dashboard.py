"""`make bench-dashboard N=1000000`: the KPIs API, the dashboard's home page and the portal
page on PostgreSQL, each beside its floor measured in the same run.

Seeds, set-based, a book of N monthly policies (`bench.seed`: 1 in 5 in EUR) with a year of
invoices (one per installment, issued 14 days before it is due) and their payments (nine in
ten of the invoices due by the as-of day paid, on their due day or up to 20 days after;
a tenth left open), each journalled as the service journals them: a day's `invoice_issued`
entry (receivable / premium billed per currency) and a day's `payment_allocated` entry (a
receivable leg per invoice paid), so that the KPIs and the aging read what they read in
production; the journal's day totals (`journal_totals`) derived from those lines by the
function migration 0010_dash back-fills them with (`ledger.journal.rebuild_totals`).
Policies with an invoice open for more than 3 days are past due (their `delinquencies` row
and status), as the collections job leaves them. `--keep` keeps the database and reuses it
on the next `--keep` run of the same N (no second seed). Then, best of nothing (every
figure is a percentile of `--loads` loads through the real app), each with its ratio to
its floor:

  kpis        GET /api/v1/reports/kpis for the year (the app's WSGI stack, in process)
              beside its floor: the bare SQL of the same figures over the raw rows, as a
              query without the day totals needs them (the year's billed and collected
              per currency from the journal's lines, the receivable before the year from
              its lines, the receivable per bucket now from the invoices; `--floor-loads`
              loads, seconds each at 1,000,000); and, for the record, the same SQL
              reading the day totals (what the app reads);
  home        GET /dashboard/ (KPIs of the last 12 months, the four charts) beside its
              floor: the same bare SQL plus the per-month sums and the funnel's counts
              (and the same over the day totals);
  portal      GET /portal/{token} served by gunicorn (`--workers`), `--clients` client
              threads on loopback, each loading a random policyholder's page in turn:
              p99 beside its floor, the bare SQL of the page's rows (the holder's policies
              and open invoices) timed from one connection.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine, text

from bench.seed import seed_monthly_policies
from premium_billing import create_app
from premium_billing.config import Settings
from premium_billing.dashboard.users import create_user
from premium_billing.db.engine import normalize_url
from premium_billing.db.migrate import upgrade
from premium_billing.http.keys import create_key
from premium_billing.ledger.journal import rebuild_totals
from premium_billing.portal_links import portal_url

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "pb_bench_dashboard"
EFFECTIVE = date(2026, 1, 1)
AS_OF = date(2026, 12, 31)  # the year's last day: a full year of invoices and payments
PASSWORD = "bench password 123"
SECRET = "bench-secret-key-bench-secret-key"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def seed(url: str, n: int) -> None:
    engine = create_engine(normalize_url(url))
    seed_monthly_policies(engine, n, EFFECTIVE, prefix="DASH")
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("UPDATE policies SET currency = 'EUR' WHERE id % 5 = 0"))
        params = {"as_of": AS_OF}
        # One invoice per installment issued by the as-of day (14 days before its due day).
        conn.execute(
            text("""
            INSERT INTO invoices (id, number_seq, number, policy_id, policyholder_id,
                installment_id, currency, issue_date, due_date, lines, total, amount_paid,
                amount_written_off, amount_due, amount_credited, status, created_at,
                updated_at)
            SELECT i.id, i.id, 'INV-D-' || lpad(i.id::text, 10, '0'), p.id, p.policyholder_id,
                i.id, p.currency, i.due_date - 14, i.due_date,
                '[{"kind": "premium", "description": "Premium", "amount": 3000}]',
                i.amount + i.fee,
                CASE WHEN paid THEN i.amount + i.fee ELSE 0 END, 0,
                CASE WHEN paid THEN 0 ELSE i.amount + i.fee END, 0,
                CASE WHEN paid THEN 'paid' ELSE 'open' END, now(), now()
            FROM installments i JOIN policies p ON p.id = i.policy_id,
            -- Nine in ten invoices due by the as-of day are paid (written paid at once: no
            -- second pass over 12 N rows), 0..20 days after their due day (none after it).
            LATERAL (SELECT i.due_date <= :as_of AND i.id % 10 <> 0 AS paid) x
            WHERE i.due_date - 14 <= :as_of"""),
            params,
        )
        conn.execute(
            text("""
            CREATE TEMP TABLE paid ON COMMIT DROP AS
            SELECT id, currency, total, policyholder_id,
                LEAST(due_date + (id % 21)::int, CAST(:as_of AS date)) AS paid_on
            FROM invoices WHERE status = 'paid'"""),
            params,
        )
        conn.execute(
            text("""
            INSERT INTO journal_entries (kind, occurred_on, created_at)
            SELECT 'invoice_issued', d, now() FROM (SELECT DISTINCT issue_date AS d FROM invoices) x
            UNION ALL
            SELECT 'payment_allocated', d, now()
            FROM (SELECT DISTINCT paid_on AS d FROM paid) y""")
        )
        conn.execute(
            text("""
            INSERT INTO journal_lines (entry_id, account, currency, amount)
            SELECT e.id, a.account, i.currency, a.sign * sum(i.total)
            FROM invoices i JOIN journal_entries e
                ON e.kind = 'invoice_issued' AND e.occurred_on = i.issue_date
            CROSS JOIN (VALUES ('premium_receivable', 1), ('premium_billed', -1))
                AS a(account, sign)
            GROUP BY e.id, a.account, a.sign, i.currency""")
        )
        conn.execute(
            text("""
            INSERT INTO journal_lines (entry_id, account, currency, amount, invoice_id,
                policyholder_id)
            SELECT e.id, 'premium_receivable', i.currency, -i.total, i.id, i.policyholder_id
            FROM paid i JOIN journal_entries e
                ON e.kind = 'payment_allocated' AND e.occurred_on = i.paid_on
            UNION ALL
            SELECT e.id, 'customer_credit', i.currency, sum(i.total), NULL, NULL
            FROM paid i JOIN journal_entries e
                ON e.kind = 'payment_allocated' AND e.occurred_on = i.paid_on
            GROUP BY e.id, i.currency""")
        )
        conn.execute(
            text("""
            INSERT INTO delinquencies (policy_id, state, since, anchor_due_date,
                amount_overdue, currency, evaluated_on, updated_at)
            SELECT policy_id, 'past_due', min(due_date) + 4, min(due_date), sum(amount_due),
                min(currency), :as_of, now()
            FROM invoices WHERE status = 'open' AND due_date < CAST(:as_of AS date) - 3
            GROUP BY policy_id"""),
            params,
        )
        conn.execute(
            text(
                "UPDATE policies SET status = 'past_due' WHERE id IN "
                "(SELECT policy_id FROM delinquencies)"
            )
        )
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('invoices', 'id'), "
                "(SELECT max(id) FROM invoices))"
            )
        )
        # The day totals as the service would have kept them: derived from the lines by the
        # migration's back-fill (one piece of code).
        rebuild_totals(conn)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()


# ----------------------------------------------------------------------------- floors

# The floors: the bare SQL of the same figures over the raw rows, as a query without the
# day totals would need them (the journal's lines of the period, of everything before it).
FLOOR_KPIS = """
SELECT l.currency,
  sum(CASE WHEN l.account = 'premium_billed' THEN -l.amount ELSE 0 END),
  sum(CASE WHEN l.account = 'premium_receivable' AND e.kind = 'payment_allocated'
      THEN -l.amount ELSE 0 END)
FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
WHERE e.occurred_on BETWEEN :start AND :end
  AND l.account IN ('premium_receivable', 'premium_billed')
GROUP BY l.currency"""
FLOOR_OPENING = """
SELECT l.currency, sum(l.amount)
FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
WHERE e.occurred_on < :start AND l.account = 'premium_receivable'
GROUP BY l.currency"""
FLOOR_AGING = """
SELECT currency, sum(CASE WHEN due_date >= :end THEN amount_due ELSE 0 END),
  sum(CASE WHEN due_date < :end THEN amount_due ELSE 0 END), count(*)
FROM invoices WHERE status IN ('open', 'partially_paid') AND amount_due > 0
GROUP BY currency"""
FLOOR_MONTHS = """
SELECT l.currency, date_trunc('month', e.occurred_on), e.kind, sum(l.amount)
FROM journal_lines l JOIN journal_entries e ON e.id = l.entry_id
WHERE e.occurred_on BETWEEN :start AND :end AND l.account = 'premium_receivable'
GROUP BY 1, 2, 3"""
FLOOR_FUNNEL = """
SELECT 'active', count(*) FROM policies WHERE status = 'active'
UNION ALL
SELECT d.state, count(*) FROM delinquencies d JOIN policies p ON p.id = d.policy_id
WHERE p.status = d.state GROUP BY d.state"""
# The same journal figures read from the day totals (what the app reads): for the record.
TOTALS_KPIS = """
SELECT currency,
  sum(CASE WHEN account = 'premium_billed' THEN -amount ELSE 0 END),
  sum(CASE WHEN account = 'premium_receivable' AND kind = 'payment_allocated'
      THEN -amount ELSE 0 END)
FROM journal_totals
WHERE occurred_on BETWEEN :start AND :end
  AND account IN ('premium_receivable', 'premium_billed')
GROUP BY currency"""
TOTALS_OPENING = """
SELECT currency, sum(amount) FROM journal_totals
WHERE occurred_on < :start AND account = 'premium_receivable' GROUP BY currency"""
TOTALS_MONTHS = """
SELECT currency, date_trunc('month', occurred_on), kind, sum(amount) FROM journal_totals
WHERE occurred_on BETWEEN :start AND :end AND account = 'premium_receivable'
GROUP BY 1, 2, 3"""
KPI_FLOOR = [FLOOR_KPIS, FLOOR_OPENING, FLOOR_AGING]
HOME_FLOOR = [*KPI_FLOOR, FLOOR_MONTHS, FLOOR_FUNNEL]
KPI_TOTALS = [TOTALS_KPIS, TOTALS_OPENING, FLOOR_AGING]
HOME_TOTALS = [*KPI_TOTALS, TOTALS_MONTHS, FLOOR_FUNNEL]
FLOOR_PORTAL = """
SELECT p.id, p.policy_number, p.status,
  (SELECT json_agg(json_build_object('id', i.id, 'due', i.due_date, 'amount', i.amount_due))
   FROM invoices i WHERE i.policy_id = p.id AND i.amount_due > 0)
FROM policies p WHERE p.policyholder_id = :holder"""


def timed(run: Callable[[], Any], loads: int) -> list[float]:
    out = []
    for _ in range(loads):
        started = time.perf_counter()
        run()
        out.append(time.perf_counter() - started)
    return out


def floor(url: str, statements: list[str], params: dict[str, Any], loads: int) -> list[float]:
    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        times = timed(lambda: [conn.execute(text(s), params).all() for s in statements], loads)
    engine.dispose()
    return times


# ----------------------------------------------------------------------------- the app


def app_loads(url: str, loads: int) -> tuple[list[float], list[float]]:
    """The KPIs API for the year and the dashboard's home page, through the app's WSGI stack
    in this process."""
    settings = Settings(database_url=url, secret_key=SECRET, allow_time_travel=True)
    app = create_app(settings)
    db = app.extensions["premium_billing.db"]
    user = f"bench-{os.getpid()}-{int(time.time())}"  # a kept database has earlier ones
    with db.session() as session:
        key = create_key(session, "finance", user).raw
        create_user(session, "finance", user, PASSWORD)
    client = app.test_client()
    period = f"from={EFFECTIVE.isoformat()}&to={AS_OF.isoformat()}"

    def kpis() -> None:
        response = client.get(
            f"/api/v1/reports/kpis?{period}", headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code == 200, response.text

    login = client.get("/dashboard/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', login)
    assert token is not None
    answer = client.post(
        "/dashboard/login",
        data={"name": user, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    assert answer.status_code == 303, answer.text

    def home() -> None:
        response = client.get(f"/dashboard/?to={AS_OF.isoformat()}&as_of={AS_OF.isoformat()}")
        assert response.status_code == 200, response.text

    kpis()  # warm
    home()
    out = timed(kpis, loads), timed(home, loads)
    db.dispose()
    return out


def portal_load(url: str, n: int, requests_total: int, clients: int, workers: int) -> list[float]:
    """p99 material: `requests_total` portal pages over `clients` keep-alive connections to
    gunicorn (`workers`), random policyholders."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": SECRET,
           "PUBLIC_BASE_URL": base, "PORTAL_RATE_LIMIT": "1000000/minute",
           "LOG_LEVEL": "WARNING"}  # fmt: skip
    settings = Settings(database_url=url, secret_key=SECRET, public_base_url=base)
    rng = random.Random(7)
    links = [portal_url(settings, rng.randint(1, n))[0] for _ in range(requests_total)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind",
         f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code < 500:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        times: list[float] = []
        lock = threading.Lock()
        shares = [links[i::clients] for i in range(clients)]

        def client(share: list[str]) -> None:
            with requests.Session() as session:
                session.get(share[0], timeout=30)  # warm the connection and the worker
                for link in share:
                    started = time.perf_counter()
                    response = session.get(link, timeout=30)
                    took = time.perf_counter() - started
                    assert response.status_code == 200, response.status_code
                    with lock:
                        times.append(took)

        threads = [threading.Thread(target=client, args=(s,)) for s in shares]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return times
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def report(share: float, rows: list[tuple[str, list[float], list[float] | None]]) -> None:
    """A table of p50, p`share` and max per row; a row with a floor also gets its ratio
    (its p`share` ÷ the floor's)."""
    label = f"p{round(share * 100)}"
    print(f"{'':30}{'p50':>11}{label:>11}{'max':>11}{'× floor':>10}")
    for name, values, floor_values in rows:
        ratio = (
            f"{percentile(values, share) / percentile(floor_values, share):9.2f}×"
            if floor_values
            else ""
        )
        print(f"{name:30}{ms(statistics.median(values))}{ms(percentile(values, share))}"
              f"{ms(max(values))}{ratio}")  # fmt: skip


def seeded(url: str, n: int) -> bool:
    """Whether the database at `url` holds a finished seed of `n` policies (--keep)."""
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            policies = conn.execute(text("SELECT count(*) FROM policies")).scalar_one()
            done = conn.execute(text("SELECT count(*) FROM journal_totals")).scalar_one()
        return bool(policies == n and done)
    except Exception:  # noqa: BLE001 (no database, no schema: not seeded)
        return False
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument(
        "--floor-loads", type=int, default=5,
        help="loads of the floors over the raw lines (seconds each at 1,000,000)",
    )  # fmt: skip
    parser.add_argument("--portal-requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="reuse the database --db-name when a previous --keep run seeded it with the same"
        " N (migrated to head first), and keep it afterwards",
    )
    parser.add_argument("--db-name", default=DB_NAME, help="the database created (dropped)")
    args = parser.parse_args()

    admin = create_engine(normalize_url(args.admin_url), isolation_level="AUTOCOMMIT")
    name = args.db_name
    url = args.admin_url.rsplit("/", 1)[0] + f"/{name}"
    reuse = args.keep and seeded(url, args.n)
    if not reuse:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        upgrade(url)
        if reuse:
            print(f"reusing {name}: {args.n:,} policies seeded by an earlier --keep run")
        else:
            started = time.perf_counter()
            seed(url, args.n)
            print(f"seeded {args.n:,} policies, a year of invoices and payments in "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        year = {"start": EFFECTIVE, "end": AS_OF}
        last12 = {"start": AS_OF.replace(day=1) - timedelta(days=334), "end": AS_OF}
        kpi_floor = floor(url, KPI_FLOOR, year, args.floor_loads)
        kpi_totals = floor(url, KPI_TOTALS, year, args.loads)
        home_floor = floor(url, HOME_FLOOR, last12, args.floor_loads)
        home_totals = floor(url, HOME_TOTALS, last12, args.loads)
        kpis, home = app_loads(url, args.loads)
        report(0.95, [
            ("kpis API (year)", kpis, kpi_floor),
            ("  floor: bare SQL, lines", kpi_floor, None),
            ("  same SQL, day totals", kpi_totals, kpi_floor),
            ("dashboard home", home, home_floor),
            ("  floor: bare SQL, lines", home_floor, None),
            ("  same SQL, day totals", home_totals, home_floor),
        ])  # fmt: skip
        portal = portal_load(url, args.n, args.portal_requests, args.clients, args.workers)
        engine = create_engine(normalize_url(url))
        rng = random.Random(11)
        with engine.connect() as conn:
            portal_floor = timed(
                lambda: conn.execute(text(FLOOR_PORTAL), {"holder": rng.randint(1, args.n)}).all(),
                args.portal_requests,
            )
        engine.dispose()
        report(0.99, [("portal page", portal, portal_floor),
                      ("  floor: bare SQL", portal_floor, None)])  # fmt: skip
        print(f"portal: {len(portal)} pages, {args.clients} clients, {args.workers} workers")
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
