"""`make bench-invoices N=1000000`: issue_invoices on PostgreSQL against its floor.

Seeds N monthly policies in a fresh database, then for a date on which every policy has
exactly one installment to invoice measures, in the same run:
  floor      one INSERT … SELECT of the same N invoice rows into a copy of the invoice table
             (same keys and indexes);
  job        issue_invoices (batches that commit, SKIP LOCKED, installments marked, journal);
  re-run     issue_invoices again (nothing to do) against an all-conflict floor: the same
             INSERT … SELECT again, every row conflicting (ON CONFLICT DO NOTHING).
Prints seconds, rows/s, the ratio to the floor, and peak RSS of this process.
"""

from __future__ import annotations

import resource
import time
from datetime import date, timedelta

from sqlalchemy import text

from bench.seed import arguments, fresh_database, seed_monthly_policies
from premium_billing.bootstrap import database
from premium_billing.db.migrate import upgrade
from premium_billing.invoicing import issue as invoicing

EFFECTIVE = date(2027, 1, 15)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor_sql(on_conflict: bool) -> str:
    select = invoicing._SELECT_INVOICE_ROWS.format(
        number_seq="nextval('invoice_number_seq')",
        number="'INV-FLOOR-' || lpad(CAST(currval('invoice_number_seq') AS text), 9, '0')",
        **invoicing._lines_sql("json_build_object", "json_build_array", "||"),
    )
    return (
        f"INSERT INTO invoices_floor ({invoicing._INSERT_COLUMNS}) {select} "
        "FROM installments i JOIN policies p ON p.id = i.policy_id "
        "WHERE i.due_date <= :horizon AND i.number = 1 "
        + ("ON CONFLICT (installment_id) DO NOTHING" if on_conflict else "")
    )


def timed(label: str, fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    print(f"  {label:<28} {elapsed:8.2f} s", flush=True)
    return elapsed


def main() -> None:
    args = arguments(__doc__, batch_size=20_000)
    n = args.n
    url, admin = fresh_database(args.admin_url, "pb_bench_invoices")
    upgrade(url)
    db = database(url)
    print(f"bench-invoices: N={n:,} monthly policies, batch size {args.batch_size:,}")
    timed("seed", lambda: seed_monthly_policies(db.engine, n, EFFECTIVE))
    as_of = EFFECTIVE - timedelta(days=14)
    horizon = EFFECTIVE
    with db.engine.begin() as conn:
        # Same columns, defaults, checks, indexes and keys (LIKE copies all but the FKs).
        conn.execute(text("CREATE TABLE invoices_floor (LIKE invoices INCLUDING ALL)"))
        fks = conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'invoices'::regclass AND contype = 'f'"
            )
        ).all()
        for name, definition in fks:
            conn.execute(
                text(f"ALTER TABLE invoices_floor ADD CONSTRAINT floor_{name} {definition}")
            )
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        # Warm the cache for both contenders alike.
        conn.execute(
            text(
                "SELECT count(*) FROM installments i JOIN policies p "
                "ON p.id = i.policy_id JOIN policy_terms t ON t.id = i.term_id"
            )
        )

    # The same rows as the job writes, references included (FKs are checked on both).
    with db.engine.begin() as conn:
        run_id = conn.execute(
            text(
                "INSERT INTO job_runs (job, as_of, trigger, status, started_at) "
                "VALUES ('bench_floor', :d, 'bench', 'succeeded', now()) RETURNING id"
            ),
            {"d": as_of},
        ).scalar_one()
        entry_id = conn.execute(
            text(
                "INSERT INTO journal_entries (kind, occurred_on, created_at) "
                "VALUES ('bench_floor', :d, now()) RETURNING id"
            ),
            {"d": as_of},
        ).scalar_one()
    params = {
        "as_of": as_of,
        "horizon": horizon,
        "run_id": run_id,
        "entry_id": entry_id,
        "now": invoicing.utcnow(),
    }

    def floor(on_conflict: bool) -> None:
        with db.engine.begin() as conn:
            conn.execute(invoicing._typed(floor_sql(on_conflict)), params)

    stats: dict[str, int] = {}

    def job() -> None:
        stats["issued"] = invoicing.issue_invoices(
            db, as_of, (horizon - as_of).days, batch_size=args.batch_size
        ).invoices_issued

    floor_s = timed("floor INSERT … SELECT", lambda: floor(False))
    job_s = timed("issue_invoices", job)
    issued = stats["issued"]
    assert issued == n, f"issued {issued} of {n}"
    conflict_floor_s = timed("floor, all conflicting", lambda: floor(True))
    rerun_s = timed("issue_invoices re-run", job)
    assert stats["issued"] == 0
    with db.engine.connect() as conn:
        invoices = conn.execute(text("SELECT count(*) FROM invoices")).scalar_one()
        floor_rows = conn.execute(text("SELECT count(*) FROM invoices_floor")).scalar_one()
    assert invoices == floor_rows == n, (invoices, floor_rows)
    print()
    print(
        f"  issue_invoices  {job_s:8.2f} s  {n / job_s:12,.0f} rows/s   "
        f"floor {floor_s:.2f} s ({n / floor_s:,.0f} rows/s)   ratio {job_s / floor_s:.2f}"
        "   (target ≤ 1.5)"
    )
    print(
        f"  re-run          {rerun_s:8.2f} s  (nothing to do)            "
        f"all-conflict floor {conflict_floor_s:.2f} s   ratio "
        f"{rerun_s / conflict_floor_s:.3f}"
    )
    print(f"  peak RSS of this process: {peak_rss_mb():.0f} MB   (target ≤ 500 MB)")
    db.dispose()
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS pb_bench_invoices WITH (FORCE)"))


if __name__ == "__main__":
    main()
