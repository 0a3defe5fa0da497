"""Seed N monthly policies set-based on PostgreSQL (one policyholder, term, premium line and
twelve installments each), for benchmarks and the crash/concurrency tests."""

from __future__ import annotations

import argparse
from datetime import date

from sqlalchemy import Engine, create_engine, text

from premium_billing.db.engine import normalize_url

TABLES = ("policyholders", "policies", "policy_terms", "premium_lines", "installments")


def seed_monthly_policies(engine: Engine, n: int, effective: date, prefix: str = "BENCH") -> int:
    """Insert n active monthly policies effective on `effective` (day ≤ 28); returns n."""
    assert effective.day <= 28, "keep the anchor day out of month-end clamping"
    with engine.begin() as conn:
        # The rows are consistent by construction: skip the per-row FK trigger checks.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        base = conn.execute(text("SELECT coalesce(max(id), 0) FROM policies")).scalar_one()
        holder_base = conn.execute(
            text("SELECT coalesce(max(id), 0) FROM policyholders")
        ).scalar_one()
        params = {"n": n, "base": base, "hbase": holder_base, "eff": effective, "prefix": prefix}
        conn.execute(
            text("""
            INSERT INTO policyholders (id, name, email, created_at, updated_at)
            SELECT :hbase + g, 'Holder ' || g, 'holder' || g || '@example.com', now(), now()
            FROM generate_series(1, :n) g"""),
            params,
        )
        conn.execute(
            text("""
            INSERT INTO policies (id, policy_number, policyholder_id, product, currency,
                effective_date, expiration_date, term_months, billing_plan, policy_fee,
                installment_fee, autopay, auto_renew, status, created_at, updated_at)
            SELECT :base + g, :prefix || '-' || lpad((:base + g)::text, 9, '0'), :hbase + g,
                'pet', 'USD', :eff, (:eff + interval '12 months')::date, 12, 'monthly', 0, 200,
                false, true, 'active', now(), now()
            FROM generate_series(1, :n) g"""),
            params,
        )
        conn.execute(
            text("""
            INSERT INTO policy_terms (id, policy_id, term_number, start_date, end_date,
                annual_premium, term_premium, status, created_at)
            SELECT :base + g, :base + g, 1, :eff, (:eff + interval '12 months')::date,
                36000 + (g % 7) * 1000, 36000 + (g % 7) * 1000, 'active', now()
            FROM generate_series(1, :n) g"""),
            params,
        )
        conn.execute(
            text("""
            INSERT INTO premium_lines (term_id, position, description, annual_premium,
                pet_name, pet_species)
            SELECT :base + g, 1, 'Pet ' || g, 36000 + (g % 7) * 1000, 'Pet ' || g, 'dog'
            FROM generate_series(1, :n) g"""),
            params,
        )
        conn.execute(
            text("""
            INSERT INTO installments (policy_id, term_id, number, due_date, amount, fee,
                kind, status)
            SELECT :base + g, :base + g, k, (:eff + make_interval(months => k - 1))::date,
                CASE WHEN k = 1 THEN (36000 + (g % 7) * 1000)
                                     - ((36000 + (g % 7) * 1000) / 12) * 11
                     ELSE (36000 + (g % 7) * 1000) / 12 END,
                200, 'premium', 'scheduled'
            FROM generate_series(1, :n) g CROSS JOIN generate_series(1, 12) k"""),
            params,
        )
        # Triggers are off under the replica role: queue the installments as they would.
        conn.execute(
            text(
                "INSERT INTO invoice_queue (installment_id, due_date) "
                "SELECT id, due_date FROM installments WHERE policy_id > :base"
            ),
            params,
        )
        for table in TABLES:
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )
    return n


def arguments(
    doc: str | None, batch_size: int, database: str | None = None, keep: bool = False
) -> argparse.Namespace:
    """The arguments every N-policy benchmark takes: --n, --batch-size, --admin-url; with
    `database`, --database (the name it creates, that by default); with `keep`, --keep."""
    parser = argparse.ArgumentParser(description=doc)
    if database is not None:
        parser.add_argument("--database", default=database, help="the database to create")
    if keep:
        parser.add_argument(
            "--keep", action="store_true", help="keep the seeded state and start from it"
        )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument(
        "--admin-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL URL allowed to create the bench database",
    )
    return parser.parse_args()


def fresh_database(admin_url: str, name: str, template: str | None = None) -> tuple[str, Engine]:
    """Drop and create the database `name` on the server of `admin_url` (a copy of the
    database `template` when it exists): its URL, and the admin engine (AUTOCOMMIT) that
    drops it at the end."""
    base = normalize_url(admin_url).rpartition("/")[0]
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        exists = (
            template is not None
            and conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :t"), {"t": template}
            ).first()
        )
        conn.execute(text(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if exists else "")))
    return f"{base}/{name}", admin
