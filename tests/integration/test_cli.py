"""The `premium-billing` command, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys

import requests
from sqlalchemy import create_engine, func, select

from premium_billing.db.engine import normalize_url
from premium_billing.http.models import ApiKey

CLI = [sys.executable, "-m", "premium_billing"]


def run(database_url, *args, check=True):
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_db_upgrade_is_repeatable_and_keys_create_prints_the_key_last(database_url, live_server):
    run(database_url, "db", "upgrade")
    result = run(database_url, "keys", "create", "--role", "billing", "--name", "ops")
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("pb_")
    engine = create_engine(normalize_url(database_url))
    with engine.connect() as conn:
        stored = conn.execute(select(ApiKey.key_hash, ApiKey.role)).all()
        assert conn.execute(select(func.count()).select_from(ApiKey)).scalar() == 1
    engine.dispose()
    assert key not in {row.key_hash for row in stored}  # only the hash is stored
    assert stored[0].role == "billing"
    ok = requests.get(
        f"{live_server.base_url}/api/v1/policies",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert ok.status_code == 200


def test_cli_errors_are_one_line_and_nonzero(database_url):
    result = run(database_url, "keys", "create", "--role", "owner", "--name", "x", check=False)
    assert result.returncode != 0
    assert "owner" in result.stderr
    bad_tz = subprocess.run(
        [*CLI, "db", "upgrade"],
        env={**os.environ, "DATABASE_URL": database_url, "BILLING_TIMEZONE": "Mars/Base"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_tz.returncode != 0
    assert bad_tz.stderr.strip().splitlines()[-1] == (
        "error: BILLING_TIMEZONE: unknown time zone 'Mars/Base'"
    )
