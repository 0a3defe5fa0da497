"""`make bench-collections N=1000000`: the collections job on PostgreSQL against its floor.

Seeds N monthly policies in a fresh database and issues their first invoices (one overdue
installment each, not measured), then for the day that moves them all into grace (the
built-in plan's grace start, 14 days after the due date) measures, in the same run:
  floor      the same N state rows and N step rows (a grace notice each) written by one
             INSERT … SELECT each into copies of `delinquencies` and `collection_steps`
             (same columns, checks, indexes, unique keys and foreign keys);
  job        the collections job (batches that commit, COLLECTIONS_WORKERS of them at once:
             reads, the rules per policy, set-based writes of states, policy statuses and
             steps, one audit row and one published event per batch and kind);
  re-run     the job again at once (nothing to do).
Prints seconds, rows/s, the ratio to the floor, the re-run against the floor, and the peak
RSS of this process.

`--database NAME` names the database it creates (and drops); `--keep` keeps the seeded state
(after the seed, the first invoices, the floor's tables and VACUUM ANALYZE) as the template
database `NAME_seeded` and, when it holds the same N, starts the next run from a copy of it
(`CREATE DATABASE … TEMPLATE`: the same pages, not re-seeded), for iterating on the job.
"""

from __future__ import annotations

import time
from datetime import date, timedelta

from sqlalchemy import text

from bench.bench_invoices import peak_rss_mb, timed
from bench.seed import arguments, fresh_database, seed_monthly_policies
from premium_billing.bootstrap import database
from premium_billing.collections.assess_pg import step_fact_sql
from premium_billing.collections.job import run_collections
from premium_billing.config import Settings
from premium_billing.db.migrate import upgrade
from premium_billing.invoicing.issue import issue_invoices

EFFECTIVE = date(2027, 1, 15)
GRACE = EFFECTIVE + timedelta(days=14)  # the built-in plan's grace start
DATABASE = "pb_bench_collections"

FLOOR_STATES = """
INSERT INTO delinquencies_floor (policy_id, state, since, anchor_due_date, amount_overdue,
    currency, through, evaluated_on, updated_at)
SELECT i.policy_id, 'in_grace', :as_of, min(i.due_date), sum(i.amount_due), min(i.currency),
    14, :as_of, now()
FROM invoices i WHERE i.status IN ('open','partially_paid') AND i.due_date <= :as_of
GROUP BY i.policy_id
"""

FLOOR_STEPS = """
INSERT INTO collection_steps_floor (policy_id, installment_id, anchor_due_date, step,
    days_after_due, taken_on, amount_overdue, currency, status, job_run_id, created_at)
SELECT i.policy_id, min(i.installment_id), min(i.due_date), 'grace_notice', 14, :as_of,
    sum(i.amount_due), min(i.currency), 'taken', NULL, now()
FROM invoices i WHERE i.status IN ('open','partially_paid') AND i.due_date <= :as_of
GROUP BY i.policy_id
"""


# The notice of each step: its email in the outbox, as the job's notices are written (the
# facts by `step_fact_sql`, the SQL twin of the event's step facts).
FLOOR_NOTICES = f"""
INSERT INTO notifications_floor (kind, business_key, policyholder_id, policy_id, invoice_id,
    facts, status, attempts, next_attempt_at, created_at, updated_at)
SELECT 'grace_notice', 'step_' || s.id, p.policyholder_id, s.policy_id, NULL,
    {step_fact_sql("s", "s.anchor_due_date + 14")}, 'queued', 0, now(), now(), now()
FROM collection_steps_floor s JOIN policies p ON p.id = s.policy_id
"""


def copy_table(conn, table: str) -> None:  # type: ignore[no-untyped-def]
    """A copy of `table` with the same columns, checks, indexes, keys and foreign keys."""
    conn.execute(text(f"CREATE TABLE {table}_floor (LIKE {table} INCLUDING ALL)"))
    fks = conn.execute(
        text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            f"WHERE conrelid = '{table}'::regclass AND contype = 'f'"
        )
    ).all()
    for name, definition in fks:
        conn.execute(text(f"ALTER TABLE {table}_floor ADD CONSTRAINT floor_{name} {definition}"))


def _seed(db, n: int) -> None:  # type: ignore[no-untyped-def]
    timed("seed", lambda: seed_monthly_policies(db.engine, n, EFFECTIVE))
    timed(
        "issue first invoices",
        lambda: issue_invoices(db, EFFECTIVE - timedelta(days=14), 14, batch_size=20_000),
    )
    with db.engine.begin() as conn:
        copy_table(conn, "delinquencies")
        copy_table(conn, "collection_steps")
        copy_table(conn, "notifications")
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def _seeded_n(db) -> int | None:  # type: ignore[no-untyped-def]
    """N of a database copied from a kept seed (None when it is not one)."""
    with db.engine.connect() as conn:
        if conn.execute(text("SELECT to_regclass('notifications_floor')")).scalar() is None:
            return None
        return int(conn.execute(text("SELECT count(*) FROM policies")).scalar_one())


def _writes(db) -> dict[str, tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """Rows inserted, updated and HOT-updated so far per table (the floor's excluded)."""
    db.engine.dispose()  # a backend flushes its statistics when it ends (else up to 10 s late)
    time.sleep(1)
    with db.engine.connect() as conn:
        return {
            r.relname: (r.n_tup_ins, r.n_tup_upd, r.n_tup_hot_upd)
            for r in conn.execute(
                text(
                    "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd "
                    "FROM pg_stat_user_tables WHERE relname NOT LIKE '%floor' ORDER BY relname"
                )
            )
        }


def main() -> None:
    args = arguments(__doc__, batch_size=5_000, database=DATABASE, keep=True)
    n, name = args.n, args.database
    print(f"bench-collections: N={n:,} policies, one overdue installment each, "
          f"batch size {args.batch_size:,}")  # fmt: skip
    template = f"{name}_seeded"
    url, admin = fresh_database(args.admin_url, name, template if args.keep else None)
    db = database(url)
    settings = Settings(database_url=url, allow_time_travel=True, log_level="warning")
    if not args.keep or _seeded_n(db) != n:
        db.dispose()
        url, admin = fresh_database(args.admin_url, name)
        upgrade(url)
        db = database(url)
        settings = Settings(database_url=url, allow_time_travel=True, log_level="warning")
        _seed(db, n)
        if args.keep:
            db.dispose()
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS {template} WITH (FORCE)"))
                conn.execute(text(f"CREATE DATABASE {template} TEMPLATE {name}"))
    else:
        print(f"  (seeded state: a copy of {template})")
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # Warm the cache for both contenders alike.
        conn.execute(text("SELECT count(*) FROM invoices i JOIN policies p ON p.id = i.policy_id"))

    parts: list[str] = []

    def floor() -> None:
        with db.engine.begin() as conn:
            for name, sql in (("states", FLOOR_STATES), ("steps", FLOOR_STEPS),
                              ("notices", FLOOR_NOTICES)):  # fmt: skip
                start = time.perf_counter()
                conn.execute(text(sql), {"as_of": GRACE})
                parts.append(f"{name} {time.perf_counter() - start:.2f} s")

    stats: dict[str, object] = {}

    def job() -> None:
        stats.update(run_collections(db, settings, GRACE, batch_size=args.batch_size).as_dict())

    before = _writes(db)
    floor_s = timed("floor INSERT … SELECT ×3", floor)
    print(f"    ({', '.join(parts)})")
    job_s = timed("collections", job)
    assert stats["steps"] == {"grace_notice": n}, stats["steps"]
    assert stats["transitions"] == {"in_grace": n}, stats["transitions"]
    rerun_s = timed("collections re-run", job)
    assert stats["steps"] == {} and stats["transitions"] == {}, stats
    with db.engine.connect() as conn:
        counts = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM delinquencies WHERE state = 'in_grace'), "
                "(SELECT count(*) FROM collection_steps), "
                "(SELECT count(*) FROM policies WHERE status = 'in_grace'), "
                "(SELECT count(*) FROM delinquencies_floor), "
                "(SELECT count(*) FROM collection_steps_floor), "
                "(SELECT count(*) FROM notifications WHERE kind = 'grace_notice'), "
                "(SELECT count(*) FROM notifications_floor)"
            )
        ).one()
    assert tuple(counts) == (n,) * 7, counts
    after = _writes(db)
    print("  rows the job wrote, inserted/updated (HOT): " + ", ".join(
        f"{t} {i - before.get(t, (0, 0, 0))[0]:,}/{u - before.get(t, (0, 0, 0))[1]:,}"
        f" ({h - before.get(t, (0, 0, 0))[2]:,})"
        for t, (i, u, h) in after.items() if (i, u) != before.get(t, (0, 0, 0))[:2]
    ))  # fmt: skip
    print()
    print(
        f"  collections  {job_s:8.2f} s  {n / job_s:12,.0f} policies/s   "
        f"floor {floor_s:.2f} s   ratio {job_s / floor_s:.2f}   (target ≤ 1.5)"
    )
    print(
        f"  re-run       {rerun_s:8.2f} s  (nothing to do)   "
        f"{rerun_s / floor_s:.3f} × the floor   (target ≤ 0.1)"
    )
    print(f"  peak RSS of this process: {peak_rss_mb():.0f} MB   (target ≤ 500 MB)")
    db.dispose()
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


if __name__ == "__main__":
    main()
