"""issue_invoices as real processes on PostgreSQL: two at once, and one killed mid-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date

import pytest
from sqlalchemy import create_engine, text

from bench.seed import seed_monthly_policies
from premium_billing.db.engine import normalize_url

pytestmark = pytest.mark.postgresql_only

EFFECTIVE = date(2027, 3, 10)
AS_OF = "2027-02-24"  # horizon 2027-03-10: exactly the first installment of each policy


def run_job_process(database_url: str, batch_size: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JOB_BATCH_SIZE": str(batch_size),
        "ALLOW_TIME_TRAVEL": "true",  # a fixed business date
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "premium_billing",
            "run-job",
            "issue_invoices",
            "--as-of",
            AS_OF,
            "--quiet",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def facts(engine):
    with engine.connect() as conn:
        return conn.execute(
            text("""
            SELECT (SELECT count(*) FROM invoices),
                   (SELECT count(DISTINCT installment_id) FROM invoices),
                   (SELECT count(DISTINCT number) FROM invoices),
                   (SELECT count(*) FROM invoice_queue WHERE due_date <= '2027-03-10'),
                   (SELECT count(*) FROM installments i WHERE i.due_date <= '2027-03-10'
                      AND NOT EXISTS (SELECT 1 FROM invoices v WHERE v.installment_id = i.id)
                      AND NOT EXISTS (SELECT 1 FROM invoice_queue q
                                      WHERE q.installment_id = i.id)),
                   (SELECT coalesce(sum(amount), 0) FROM journal_lines
                      WHERE account = 'premium_receivable'),
                   (SELECT coalesce(sum(total), 0) FROM invoices)
        """)
        ).one()


def test_two_processes_at_once_issue_exactly_one_invoice_per_installment(backend, database_url):
    engine = create_engine(normalize_url(database_url))
    n = 3000
    seed_monthly_policies(engine, n, EFFECTIVE)
    first, second = run_job_process(database_url, 50), run_job_process(database_url, 50)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0, outs[0][1]
    assert second.returncode == 0, outs[1][1]
    total, distinct, numbers, queued, lost, receivable, invoiced = facts(engine)
    assert (total, distinct, numbers) == (n, n, n)
    assert queued == 0 and lost == 0
    assert receivable == invoiced
    engine.dispose()


def test_a_run_killed_mid_way_then_rerun_completes_without_duplicates_or_gaps(
    backend, database_url
):
    engine = create_engine(normalize_url(database_url))
    n, batch = 30000, 100
    seed_monthly_policies(engine, n, EFFECTIVE)
    process = run_job_process(database_url, batch)
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline:
        done = facts(engine)[0]
        if done >= 5 * batch:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    total, distinct, _, queued, lost, receivable, invoiced = facts(engine)
    assert 0 < total < n, "the kill should land mid-way"
    assert total % batch == 0, "only whole batches are committed"
    assert total == distinct and queued == n - total and lost == 0
    assert receivable == invoiced
    rerun = run_job_process(database_url, batch)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    total, distinct, numbers, queued, lost, receivable, invoiced = facts(engine)
    assert (total, distinct, numbers, queued, lost) == (n, n, n, 0, 0)
    assert receivable == invoiced
    engine.dispose()
