"""The scheduler process: APScheduler 3.x, job store in the same database, daily cron
triggers in the business time zone. One scheduler is active per database: on PostgreSQL
an advisory lock held on a dedicated connection (a second process waits on it and takes
over when the first dies); on SQLite a file lock beside the database file."""

from __future__ import annotations

import fcntl
import logging
import threading
from pathlib import Path
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask
from sqlalchemy import text

from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.jobs.runner import JOBS, run_job

log = logging.getLogger(__name__)

# pg_advisory_lock key: any constant shared by every scheduler of this service.
SCHEDULER_LOCK_KEY = 0x5042_5343  # "PBSC"


class SchedulerLock:
    """Held for the life of the active scheduler process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Any = None
        self._file: Any = None

    def try_acquire(self) -> bool:
        if self.db.dialect == "postgresql":
            conn = self.db.engine.connect()
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:k)"), {"k": SCHEDULER_LOCK_KEY}
            ).scalar_one()
            conn.commit()
            if got:
                self._conn = conn
                return True
            conn.close()
            return False
        path = Path(self.db.engine.url.database or "var/premium_billing.db")
        handle = open(path.with_suffix(path.suffix + ".scheduler.lock"), "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    def still_held(self) -> bool:
        """False when the database connection holding the lock has gone."""
        if self._conn is None:
            return self._file is not None
        try:
            self._conn.execute(text("SELECT 1"))
            self._conn.commit()
            return True
        except Exception:  # the connection is gone: so is the lock
            return False

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
        if self._file is not None:
            self._file.close()
            self._file = None


def _times(settings: Settings) -> dict[str, tuple[int, int]]:
    times: dict[str, tuple[int, int]] = {}
    for item in settings.scheduler_times.split(","):
        name, _, at = item.strip().partition("=")
        if name in JOBS and at:
            hour, _, minute = at.partition(":")
            times[name] = (int(hour), int(minute or 0))
    for name, spec in JOBS.items():
        if name not in times and ":" in spec.default_time:
            hour, _, minute = spec.default_time.partition(":")
            times[name] = (int(hour), int(minute))
    return times


def _intervals(settings: Settings) -> dict[str, int]:
    """Jobs that run every N minutes ("every 15 min"; RECONCILE_INTERVAL_MINUTES)."""
    minutes: dict[str, int] = {}
    for name, spec in JOBS.items():
        words = spec.default_time.split()
        if len(words) >= 2 and words[0] == "every" and words[1].isdigit():
            minutes[name] = int(words[1])
    if "reconcile" in minutes:
        minutes["reconcile"] = max(1, settings.reconcile_interval_minutes)
    return minutes


_app: Flask | None = None


def scheduled_run(name: str) -> None:
    """What APScheduler calls (by reference, so the job store can persist it)."""
    assert _app is not None, "the scheduler process sets the app"
    settings: Settings = _app.config["SETTINGS"]
    db: Database = _app.extensions["premium_billing.db"]
    as_of = business_date(settings.timezone)
    run = run_job(db, settings, name, as_of, trigger="scheduler")
    log.info("scheduled job ran", extra={"job": name, "run_id": run.id, "stats": run.stats})


def build_scheduler(app: Flask) -> BackgroundScheduler:
    settings: Settings = app.config["SETTINGS"]
    db: Database = app.extensions["premium_billing.db"]
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=db.engine, tablename="apscheduler_jobs")},
        timezone=settings.timezone,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 6 * 3600},
    )
    for name, (hour, minute) in _times(settings).items():
        scheduler.add_job(
            scheduled_run,
            CronTrigger(hour=hour, minute=minute, timezone=settings.timezone),
            args=[name],
            id=name,
            name=name,
            replace_existing=True,
        )
    for name, every in _intervals(settings).items():
        scheduler.add_job(
            scheduled_run,
            IntervalTrigger(minutes=every, timezone=settings.timezone),
            args=[name],
            id=name,
            name=name,
            replace_existing=True,
        )
    return scheduler


def next_runs(app: Flask) -> dict[str, Any]:
    """Each job's next fire time from its trigger (without starting a scheduler)."""
    from datetime import UTC, datetime

    settings: Settings = app.config["SETTINGS"]
    now = datetime.now(UTC).astimezone(settings.timezone)
    result = {}
    for name, (hour, minute) in _times(settings).items():
        trigger = CronTrigger(hour=hour, minute=minute, timezone=settings.timezone)
        fire = trigger.get_next_fire_time(None, now)
        result[name] = fire.astimezone(UTC) if fire else None
    for name, every in _intervals(settings).items():
        fire = IntervalTrigger(minutes=every, timezone=settings.timezone).get_next_fire_time(
            None, now
        )
        result[name] = fire.astimezone(UTC) if fire else None
    return result


def run_scheduler(app: Flask, stop: threading.Event | None = None) -> None:
    """Wait to become the active scheduler, then run jobs until stopped or the lock is lost."""
    global _app
    _app = app
    poll_seconds = app.config["SETTINGS"].scheduler_poll_seconds
    stop = stop or threading.Event()
    lock = SchedulerLock(app.extensions["premium_billing.db"])
    waited = False
    while not lock.try_acquire():
        if not waited:
            log.info("another scheduler is active; waiting to take over")
            print("scheduler: another scheduler is active; waiting to take over", flush=True)
            waited = True
        if stop.wait(poll_seconds):
            return
    print("scheduler: active", flush=True)
    scheduler = build_scheduler(app)
    scheduler.start()
    try:
        while not stop.wait(poll_seconds):
            if not lock.still_held():
                log.error("scheduler lock lost; stopping so that another may take over")
                break
    finally:
        scheduler.shutdown(wait=True)
        lock.release()
