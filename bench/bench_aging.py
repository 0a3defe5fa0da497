"""`make bench-aging N=1000000`: the aging report on PostgreSQL against its floor.

Seeds, set-based, N open invoices (two per policy; 4 in 5 in USD, 1 in 5 in EUR; due dates
spread over every bucket) with their issue journal entry, and a share `--paid-since` of
further invoices paid after an earlier date (their payment legs dated after it, so the as-of
path has something to read back). Then measures, in the same run, best of `--repeat`:
  floor       a bare GROUP BY of the open invoices' amount due per currency and bucket (the
              same CASE on due dates: the figure without any as-of reading);
  aging       `reports.aging.aging_totals` as of the seed day (today: nothing moved since);
  aging past  the same as of the earlier day (the invoices paid since are owed again);
  page        `reports.aging.aging`: the totals and the first page of 50 policy rows;
  csv         `reports.aging.aging_csv`: every policy row streamed through a server-side
              cursor, with this process's peak RSS before and after (bounded memory).
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import create_engine, text

from premium_billing.bootstrap import database
from premium_billing.db.engine import normalize_url
from premium_billing.db.migrate import upgrade
from premium_billing.reports import aging as report
from premium_billing.reports.rules import bucket_cutoffs

AS_OF = date(2027, 6, 30)
EARLIER = AS_OF - timedelta(days=20)
DB_NAME = "pb_bench_aging"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(conn: Any, n: int, paid_since: int) -> None:
    """n open invoices on n // 2 policies, and `paid_since` invoices paid after EARLIER."""
    policies = (n + 1) // 2 + paid_since
    params = {
        "policies": policies,
        "n": n,
        "paid": paid_since,
        "as_of": AS_OF,
        "eff": date(2026, 7, 1),
    }
    # The rows are consistent by construction: skip the per-row FK trigger checks.
    conn.execute(text("SET LOCAL session_replication_role = replica"))
    conn.execute(
        text("""
        INSERT INTO policyholders (id, name, email, created_at, updated_at)
        SELECT g, 'Holder ' || g, 'holder' || g || '@example.com', now(), now()
        FROM generate_series(1, :policies) g"""),
        params,
    )
    conn.execute(
        text("""
        INSERT INTO policies (id, policy_number, policyholder_id, product, currency,
            effective_date, expiration_date, term_months, billing_plan, policy_fee,
            installment_fee, autopay, auto_renew, status, created_at, updated_at)
        SELECT g, 'AGE-' || lpad(g::text, 9, '0'), g, 'pet',
            CASE WHEN g % 5 = 0 THEN 'EUR' ELSE 'USD' END, :eff,
            (:eff + interval '12 months')::date,
            12, 'monthly', 0, 0, false, true,
            CASE WHEN g % 7 = 0 THEN 'past_due' ELSE 'active' END, now(), now()
        FROM generate_series(1, :policies) g"""),
        params,
    )
    entry = conn.execute(
        text(
            "INSERT INTO journal_entries (kind, occurred_on, created_at) "
            "VALUES ('invoice_issued', :d, now()) RETURNING id"
        ),
        {"d": AS_OF - timedelta(days=200)},
    ).scalar_one()
    params["entry"] = entry
    # Open: invoice k (0..n-1) on policy k / 2 + 1, due 0..149 days before as_of + 10.
    # Paid since: invoice n + j on policy (n+1)/2 + j + 1, paid after EARLIER.
    conn.execute(
        text("""
        INSERT INTO invoices (id, number_seq, number, policy_id, policyholder_id, currency,
            issue_date, due_date, lines, total, amount_paid, amount_written_off, amount_due,
            amount_credited, status, issue_entry_id, created_at, updated_at)
        SELECT k + 1, k + 1, 'INV-B-' || lpad((k + 1)::text, 9, '0'), p, p,
            CASE WHEN p % 5 = 0 THEN 'EUR' ELSE 'USD' END,
            :as_of - 200, :as_of + 10 - (k % 150),
            '[{"kind": "premium", "description": "Premium", "amount": 3000}]',
            3000 + k % 7, CASE WHEN k >= :n THEN 3000 + k % 7 ELSE 0 END, 0,
            CASE WHEN k >= :n THEN 0 ELSE 3000 + k % 7 END, 0,
            CASE WHEN k >= :n THEN 'paid' ELSE 'open' END, :entry, now(), now()
        FROM generate_series(0, :n + :paid - 1) k,
             LATERAL (SELECT CASE WHEN k < :n THEN k / 2 + 1
                                  ELSE (:n + 1) / 2 + (k - :n) + 1 END AS p) AS pol"""),
        params,
    )
    conn.execute(
        text("""
        INSERT INTO journal_lines (entry_id, account, currency, amount)
        SELECT :entry, a.account, i.currency, a.sign * sum(i.total)
        FROM invoices i CROSS JOIN (VALUES ('premium_receivable', 1), ('premium_billed', -1))
            AS a(account, sign)
        GROUP BY a.account, a.sign, i.currency"""),
        params,
    )
    if paid_since:
        paid_entry = conn.execute(
            text(
                "INSERT INTO journal_entries (kind, occurred_on, created_at) "
                "VALUES ('payment_allocated', :d, now()) RETURNING id"
            ),
            {"d": EARLIER + timedelta(days=5)},
        ).scalar_one()
        params["paid_entry"] = paid_entry
        conn.execute(
            text("""
            INSERT INTO journal_lines (entry_id, account, currency, amount, invoice_id,
                policyholder_id)
            SELECT :paid_entry, 'premium_receivable', currency, -total, id, policyholder_id
            FROM invoices WHERE status = 'paid'
            UNION ALL
            SELECT :paid_entry, 'customer_credit', currency, sum(total), NULL, NULL
            FROM invoices WHERE status = 'paid' GROUP BY currency"""),
            params,
        )
    for table in ("policyholders", "policies", "invoices"):
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        )


def floor_sql(as_of: date) -> tuple[str, dict[str, Any]]:
    """The bare GROUP BY: the open invoices' amount due per currency and bucket."""
    cases, params, later = [], {}, None
    for i, cut in enumerate(bucket_cutoffs(as_of)):
        conditions = []
        if cut.earliest_due_date is not None:
            conditions.append(f"due_date >= :c{i}")
            params[f"c{i}"] = cut.earliest_due_date
        if later is not None:
            conditions.append(f"due_date < :l{i}")
            params[f"l{i}"] = later
        when = " AND ".join(conditions) or "true"
        cases.append(f"sum(CASE WHEN {when} THEN amount_due ELSE 0 END)")
        later = cut.earliest_due_date
    sql = (
        f"SELECT currency, {', '.join(cases)}, count(*) FROM invoices "
        "WHERE status IN ('open', 'partially_paid') AND amount_due > 0 "
        "GROUP BY currency ORDER BY currency"
    )
    return sql, params


def best(label: str, fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    print(f"  {label:<34} {min(times):8.3f} s  (best of {repeat})", flush=True)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--paid-since", type=float, default=0.1, help="share of n")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument(
        "--admin-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL URL allowed to create the bench database",
    )
    args = parser.parse_args()
    n, paid = args.n, int(args.n * args.paid_since)
    base = normalize_url(args.admin_url).rpartition("/")[0]
    url = f"{base}/{DB_NAME}"
    admin = create_engine(normalize_url(args.admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {DB_NAME}"))
    upgrade(url)
    db = database(url)
    print(f"bench-aging: N={n:,} open invoices, {paid:,} more paid since {EARLIER}")
    start = time.perf_counter()
    with db.engine.begin() as conn:
        seed(conn, n, paid)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    print(f"  {'seed':<34} {time.perf_counter() - start:8.2f} s", flush=True)

    sql, params = floor_sql(AS_OF)

    def floor() -> list[Any]:
        with db.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def totals(as_of: date) -> Callable[[], Any]:
        def run() -> Any:
            with db.session() as session:
                return report.aging_totals(session, as_of)

        return run

    def page() -> Any:
        with db.session() as session:
            return report.aging(session, AS_OF, limit=50)

    floor()  # warm the cache for every contender alike
    floor_s, floor_rows = best("floor GROUP BY", floor, args.repeat)
    aging_s, now_totals = best(f"aging_totals as of {AS_OF}", totals(AS_OF), args.repeat)
    past_s, past_totals = best(f"aging_totals as of {EARLIER}", totals(EARLIER), args.repeat)
    page_s, first = best("aging: totals + first 50 rows", page, args.repeat)

    # The same figures as the floor (as of the seed day), and the paid-since owed again.
    by_floor = {row[0]: (list(map(int, row[1:6])), int(row[6])) for row in floor_rows}
    by_aging = {t.currency: (list(t.buckets.values()), t.invoices) for t in now_totals}
    assert by_floor == by_aging, (by_floor, by_aging)
    assert sum(t.invoices for t in now_totals) == n
    assert sum(t.invoices for t in past_totals) == n + paid
    assert len(first.rows) == min(50, (n + 1) // 2)

    rss_before = peak_rss_mb()
    start = time.perf_counter()
    size = rows = 0
    for chunk in report.aging_csv(db, AS_OF):
        size += len(chunk)
        rows += chunk.count("\n")
    csv_s = time.perf_counter() - start
    rows -= 1  # the header
    assert rows == (n + 1) // 2, rows
    print(
        f"  {'csv: every policy row':<34} {csv_s:8.3f} s  ({rows:,} rows, "
        f"{size / 1e6:.1f} MB, {rows / csv_s:,.0f} rows/s)"
    )
    print(
        f"  peak RSS: {rss_before:.0f} MB before the CSV, {peak_rss_mb():.0f} MB after "
        f"(chunks of {report.CSV_CHUNK_ROWS} rows)"
    )
    print(f"  ratio aging / floor:       {aging_s / floor_s:6.2f}  (target ≤ 1.5)")
    print(f"  ratio aging past / floor:  {past_s / floor_s:6.2f}")
    print(f"  ratio page / floor:        {page_s / floor_s:6.2f}")
    db.dispose()
    if not args.keep:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"))


if __name__ == "__main__":
    main()
