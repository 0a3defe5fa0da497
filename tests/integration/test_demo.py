"""`make run`'s demo as a real process: loads once, books balance, the audit chain holds."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import create_engine, text

from premium_billing.db.engine import normalize_url
from premium_billing.http.keys import hash_key

TABLES = ("policies", "invoices", "payments", "allocations", "journal_entries", "bank_lines")


def cli(database_url, *args):
    env = {**os.environ, "DATABASE_URL": database_url, "STRIPE_SECRET_KEY": ""}
    return subprocess.run(
        [sys.executable, "-m", "premium_billing", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def counts(database_url):
    engine = create_engine(normalize_url(database_url))
    with engine.connect() as conn:
        result = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}
    engine.dispose()
    return result


def test_demo_loads_once_and_the_books_and_audit_trail_check_out(database_url):
    first = cli(database_url, "demo")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "demo data loaded" in out
    assert "reconciliation run:" in out and "'matched': 2" in out
    assert "(balanced)" in out and "unbalanced" not in out
    assert out.strip().splitlines()[-1].startswith("try: curl")
    key = out.split("Bearer ", 1)[1].split('"', 1)[0]
    engine = create_engine(normalize_url(database_url))
    with engine.connect() as conn:
        hashes = set(conn.execute(text("SELECT key_hash FROM api_keys")).scalars())
    engine.dispose()
    assert hash_key(key) in hashes  # the printed key works against this database
    loaded = counts(database_url)
    assert loaded["invoices"] > 0 and loaded["payments"] >= 4 and loaded["bank_lines"] == 3
    again = cli(database_url, "demo")
    assert again.returncode == 0, again.stderr
    assert "demo data already loaded" in again.stdout
    assert counts(database_url) == loaded
    for command in (("ledger", "check"), ("audit", "verify")):
        result = cli(database_url, *command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
