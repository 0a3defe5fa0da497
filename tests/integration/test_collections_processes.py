"""The collections job as real processes on PostgreSQL: two at once take each step once and
publish (audit) each transition once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta

import pytest
from sqlalchemy import create_engine, text

from bench.seed import seed_monthly_policies
from premium_billing.bootstrap import database
from premium_billing.config import Settings
from premium_billing.db.engine import normalize_url
from premium_billing.jobs.runner import run_job

pytestmark = pytest.mark.postgresql_only

EFFECTIVE = date(2027, 3, 10)
GRACE = EFFECTIVE + timedelta(days=14)  # the built-in plan's grace start


def run_collections_process(database_url: str, batch_size: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JOB_BATCH_SIZE": str(batch_size),
        "ALLOW_TIME_TRAVEL": "true",
        "LOG_LEVEL": "warning",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "premium_billing", "run-job", "collections", "--as-of",
         GRACE.isoformat(), "--quiet"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_two_processes_at_once_take_each_step_once(backend, database_url):
    engine = create_engine(normalize_url(database_url))
    n = 1500
    seed_monthly_policies(engine, n, EFFECTIVE)
    db = database(database_url)
    settings = Settings(database_url=database_url, allow_time_travel=True)
    run_job(db, settings, "issue_invoices", EFFECTIVE - timedelta(days=14))
    first, second = (
        run_collections_process(database_url, 40),
        run_collections_process(database_url, 40),
    )
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0, outs[0][1]
    assert second.returncode == 0, outs[1][1]
    with engine.connect() as conn:
        steps = _per_policy(conn, "step", "collection_steps")
        states = conn.execute(
            text("SELECT state, count(*) FROM delinquencies GROUP BY state")
        ).all()
        statuses = conn.execute(text("SELECT status, count(*) FROM policies GROUP BY status")).all()
        audited = conn.execute(
            text("SELECT action, after FROM audit_log WHERE action IN "
                 "('delinquency_changed', 'collection_steps_taken')")
        ).all()  # fmt: skip
    assert steps == [("grace_notice", n, n)]  # the reminders were stale: skipped
    assert states == [("in_grace", n)]
    assert statuses == [("in_grace", n)]
    moved = _audited(audited, "delinquency_changed", "policies", "active->in_grace")
    assert len(moved) == n and len(set(moved)) == n
    taken = _audited(audited, "collection_steps_taken", "steps", "grace_notice")
    assert len(taken) == n and len(set(taken)) == n
    db.dispose()
    engine.dispose()


def _per_policy(conn, column: str, rows: str) -> list[tuple[str, int, int]]:
    """(value, rows, distinct policies) per value of `column`."""
    return [
        tuple(row)
        for row in conn.execute(
            text(f"SELECT {column}, count(*), count(DISTINCT policy_id) FROM {rows} "
                 f"GROUP BY {column}")
        )
    ]  # fmt: skip


def _audited(rows, action: str, field: str, kind: str) -> list[int]:
    """The ids the audit rows of `action` name under after[field][kind]."""
    ids: list[int] = []
    for name, after in rows:
        if name == action:
            ids += (after if isinstance(after, dict) else json.loads(after))[field][kind]
    return ids


@pytest.mark.parametrize("workers", [1, 3])
def test_batches_in_worker_threads_take_each_step_once_as_the_job(backend, database_url, workers):
    """`COLLECTIONS_WORKERS` batches at once (threads, a transaction each): every policy
    assessed once, one step and one notice each, every audit row by the job's actor."""
    engine = create_engine(normalize_url(database_url))
    n = 230
    seed_monthly_policies(engine, n, EFFECTIVE)
    db = database(database_url)
    settings = Settings(
        database_url=database_url, allow_time_travel=True, job_batch_size=9,
        collections_workers=workers,
    )  # fmt: skip
    run_job(db, settings, "issue_invoices", EFFECTIVE - timedelta(days=14))
    run = run_job(db, settings, "collections", GRACE)
    assert run.status == "succeeded", run.error
    stats = run.stats or {}
    with engine.connect() as conn:
        steps = _per_policy(conn, "step", "collection_steps")
        notices = _per_policy(conn, "kind", "notifications WHERE kind = 'grace_notice'")
        statuses = conn.execute(text("SELECT status, count(*) FROM policies GROUP BY status")).all()
        actors = conn.execute(
            text("SELECT DISTINCT actor_kind, actor_name FROM audit_log WHERE action IN "
                 "('delinquency_changed', 'collection_steps_taken')")
        ).all()  # fmt: skip
        run_ids = conn.execute(
            text("SELECT DISTINCT job_run_id FROM collection_steps")
        ).scalars().all()  # fmt: skip
    assert stats["policies_assessed"] == n
    assert stats["batches"] == -(-n // 9)
    assert steps == [("grace_notice", n, n)]
    assert notices == [("grace_notice", n, n)]
    assert statuses == [("in_grace", n)]
    assert actors == [("job", "collections")]
    assert run_ids == [run.id]
    db.dispose()
    engine.dispose()
