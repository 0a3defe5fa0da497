"""`premium-billing keys list|revoke|rotate` (issue 12, item 7), run as real processes on
each backend, the keys tried over real HTTP against the same database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from premium_billing.audit import trail as audit
from premium_billing.audit.models import AuditLog
from premium_billing.errors import Conflict
from premium_billing.http.keys import hash_key, rotate_key
from premium_billing.http.models import ApiKey


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "premium_billing", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def status(live_server: Any, key: str, method: str = "GET", path: str = "/policies") -> int:
    response = requests.request(
        method,
        f"{live_server.base_url}/api/v1{path}",
        headers={"Authorization": f"Bearer {key}"},
        json={} if method == "POST" else None,
        timeout=10,
    )
    return response.status_code


def listing(database_url: str, *flags: str) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in ok(cli(database_url, "keys", "list", "--json", *flags))
            .splitlines()]  # fmt: skip
    return {row["id"]: row for row in rows}


def test_list_revoke_and_rotate(database_url, live_server, db):
    ops = ok(cli(database_url, "keys", "create", "--role", "admin", "--name", "ops"))
    ops_key = ops.strip().splitlines()[-1]
    made = ok(cli(database_url, "keys", "create", "--role", "billing", "--name", "Billing team"))
    billing_key = made.strip().splitlines()[-1]

    table = ok(cli(database_url, "keys", "list"))
    assert table.splitlines()[0].split()[:3] == ["id", "role", "status"]
    assert "key_1" in table and "key_2" in table and "Billing team" in table
    for secret in (ops_key, billing_key, hash_key(ops_key), hash_key(billing_key)):
        assert secret not in table  # never the key, nor its hash
    keys = listing(database_url)
    assert {k: (v["role"], v["status"]) for k, v in keys.items()} == {
        "key_1": ("admin", "active"),
        "key_2": ("billing", "active"),
    }
    assert keys["key_2"]["prefix"] == billing_key[:10]

    # Revoke: a 401 from now on; again, or a key that does not exist: one line, exit 1.
    assert status(live_server, ops_key) == 200
    assert ok(cli(database_url, "keys", "revoke", "key_1")).startswith("revoked admin key 'ops'")
    assert status(live_server, ops_key) == 401
    assert error_line(cli(database_url, "keys", "revoke", "key_1")).startswith(
        "Error: key_1 was already revoked at "
    )
    assert error_line(cli(database_url, "keys", "revoke", "key_99")) == (
        "Error: no API key key_99 (see `keys list`)"
    )
    assert listing(database_url)["key_1"]["status"] == "revoked"
    assert "key_1" not in listing(database_url, "--active")

    # Rotate: the new key (last line) has the old one's name and role; the old one stops.
    rotated = ok(cli(database_url, "keys", "rotate", "key_2"))
    new_key = rotated.strip().splitlines()[-1]
    assert new_key.startswith("pb_") and new_key != billing_key
    assert "key_2 stops working at" in rotated and "(id key_3)" in rotated
    assert status(live_server, billing_key) == 401
    assert status(live_server, new_key) == 200
    assert status(live_server, new_key, "POST", "/payments") == 403  # still billing
    keys = listing(database_url)
    assert keys["key_3"]["rotated_from"] == "key_2" and keys["key_2"]["rotated_to"] == "key_3"
    assert (keys["key_3"]["role"], keys["key_3"]["name"]) == ("billing", "Billing team")
    assert error_line(cli(database_url, "keys", "rotate", "key_2")) == (
        "Error: key_2 was already rotated: its successor is key_3"
    )
    assert error_line(cli(database_url, "keys", "rotate", "key_1")) == (
        "Error: key_1 is revoked: create a new key instead"
    )

    # With a grace, both keys work until it ends; revoking the old one ends it at once.
    graced = ok(cli(database_url, "keys", "rotate", "key_3", "--grace", "1h"))
    newest = graced.strip().splitlines()[-1]
    assert status(live_server, new_key) == 200 and status(live_server, newest) == 200
    assert listing(database_url)["key_3"]["status"] == "expiring"
    ok(cli(database_url, "keys", "revoke", "key_3"))
    assert status(live_server, new_key) == 401 and status(live_server, newest) == 200
    for bad in ("31d", "1w", "-1h"):
        line = error_line(cli(database_url, "keys", "rotate", "key_4", "--grace", bad))
        assert line.startswith("Error: --grace"), line

    with db.session() as session:
        assert audit.verify(session).problem is None
        rows = session.scalars(
            select(AuditLog).where(AuditLog.entity == "api_keys").order_by(AuditLog.id)
        ).all()
    assert {r.actor_name for r in rows} == {"keys create", "keys revoke", "keys rotate"}
    assert {r.actor_kind for r in rows} == {"cli"}
    for row in rows:
        for values in (row.before or {}, row.after or {}):
            assert values.get("key_hash", "[redacted]") == "[redacted]"


def test_a_key_is_rotated_once_by_a_database_constraint(db, make_key):
    make_key("finance", "Finance team")
    with db.session() as session:
        session.add(ApiKey(name="a", role="finance", key_hash="1" * 64, prefix="pb_1",
                           rotated_from_id=1))  # fmt: skip
        session.commit()
    with db.session() as session, pytest.raises(IntegrityError):
        session.add(ApiKey(name="b", role="finance", key_hash="2" * 64, prefix="pb_2",
                           rotated_from_id=1))  # fmt: skip
        session.commit()


def _race_rotations(db: Any, key_id: int) -> list[str]:
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def rotate() -> None:
        barrier.wait()
        with db.session() as session:
            try:
                rotate_key(session, f"key_{key_id}")
                outcomes.append("rotated")
            except Conflict:
                outcomes.append("conflict")

    threads = [threading.Thread(target=rotate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.mark.postgresql_only
def test_two_rotations_at_once_one_wins(db, make_key):
    for round_ in range(5):
        make_key("billing", f"team {round_}")
        with db.session() as session:
            target = session.scalar(select(ApiKey.id).order_by(ApiKey.id.desc()).limit(1))
        assert sorted(_race_rotations(db, target)) == ["conflict", "rotated"]
        with db.session() as session:
            successors = session.scalars(
                select(ApiKey.id).where(ApiKey.rotated_from_id == target)
            ).all()
        assert len(successors) == 1
