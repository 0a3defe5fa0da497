"""The scheduler process: one active per database, a second takes over when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import create_engine, text

from premium_billing.db.engine import normalize_url


def start_scheduler(database_url: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SCHEDULER_POLL_SECONDS": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "premium_billing", "scheduler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until(process: subprocess.Popen[str], needle: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line:
            seen.append(line)
            if needle in line:
                return "".join(seen)
        else:
            time.sleep(0.05)
    raise AssertionError(f"{needle!r} not seen in: {''.join(seen)}")


def test_one_scheduler_is_active_and_another_takes_over_when_it_dies(backend, database_url):
    first = start_scheduler(database_url)
    second = None
    try:
        read_until(first, "scheduler: active")
        second = start_scheduler(database_url)
        read_until(second, "waiting to take over")
        engine = create_engine(normalize_url(database_url))
        with engine.connect() as conn:
            jobs = set(conn.execute(text("SELECT id FROM apscheduler_jobs")).scalars())
        engine.dispose()
        assert {"issue_invoices", "renewals"} <= jobs
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        read_until(second, "scheduler: active", timeout=60)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    finally:
        for process in (first, second):
            if process is None:
                continue
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
