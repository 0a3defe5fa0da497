"""Run a job for a business date, recorded as a JobRun, acting as that job."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select

from premium_billing.actor import Actor, acting_as
from premium_billing.clock import window_problem
from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.db.types import utcnow
from premium_billing.errors import NotFound, Unprocessable
from premium_billing.jobs import metrics
from premium_billing.jobs.models import JobRun

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
JobFunction = Callable[[Database, Settings, date, int, Progress | None], dict[str, Any]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    description: str
    function: JobFunction
    default_time: str  # HH:MM in the business time zone, or "every 15 min"


def _issue_invoices(
    db: Database, settings: Settings, as_of: date, run_id: int, progress: Progress | None
) -> dict[str, Any]:
    from premium_billing.invoicing.issue import issue_invoices

    return issue_invoices(
        db,
        as_of,
        settings.invoice_lead_days,
        batch_size=settings.job_batch_size,
        job_run_id=run_id,
        progress=progress,
        settings=settings,
    ).as_dict()


def _renewals(
    db: Database, settings: Settings, as_of: date, run_id: int, progress: Progress | None
) -> dict[str, Any]:
    from premium_billing.invoicing.renewals import run_renewals

    return run_renewals(
        db, as_of, settings.renewal_lead_days, job_run_id=run_id, settings=settings
    ).as_dict()


def _reconcile(
    db: Database, settings: Settings, as_of: date, run_id: int, progress: Progress | None
) -> dict[str, Any]:
    from premium_billing.reconciliation.runs import run_reconciliation

    with db.session() as session:
        run = run_reconciliation(session, settings, as_of, trigger="job", progress=progress)
        return {"reconciliation_run_id": f"recon_{run.id}", **(run.stats or {})}


def _autopay(
    db: Database, settings: Settings, as_of: date, run_id: int, progress: Progress | None
) -> dict[str, Any]:
    from premium_billing.collections.plans import plans
    from premium_billing.stripe_billing.autopay import run_autopay

    # Retries on the delinquency plan's days, per product: one timeline for both.
    retries = {product: list(plan.autopay_retry_days) for product, plan in plans(settings).items()}
    return run_autopay(db, settings, as_of, job_run_id=run_id, retry_days=retries).as_dict()


def _collections(
    db: Database, settings: Settings, as_of: date, run_id: int, progress: Progress | None
) -> dict[str, Any]:
    from premium_billing.collections.job import run_collections

    return run_collections(
        db,
        settings,
        as_of,
        job_run_id=run_id,
        batch_size=settings.job_batch_size,
        progress=progress,
    ).as_dict()


def _retry_webhooks(
    db: Database, settings: Settings, as_of: date, run_id: int, progress: Progress | None
) -> dict[str, Any]:
    from webhooks.inbox import retry_failed

    return retry_failed(db, settings)


def _send_refunds(
    db: Database, settings: Settings, as_of: date, run_id: int, progress: Progress | None
) -> dict[str, Any]:
    from premium_billing.stripe_billing.refunds import resend_pending

    return resend_pending(db, settings)


JOBS: dict[str, JobSpec] = {
    "issue_invoices": JobSpec(
        "issue_invoices",
        "Invoice every installment due within the lead time (INVOICE_LEAD_DAYS).",
        _issue_invoices,
        "02:00",
    ),
    "renewals": JobSpec(
        "renewals",
        "Renew auto-renew policies RENEWAL_LEAD_DAYS before expiry; expire the others.",
        _renewals,
        "02:30",
    ),
    "reconcile": JobSpec(
        "reconcile",
        "Match suspense payments to open invoices; post the confident matches.",
        _reconcile,
        "every 15 min",
    ),
    "autopay": JobSpec(
        "autopay",
        "Charge due autopay invoices off-session; retry declines AUTOPAY_RETRY_DAYS later.",
        _autopay,
        "03:00",
    ),
    "collections": JobSpec(
        "collections",
        "Delinquency: reminders, grace and final notices, lapses and reinstatements, by plan.",
        _collections,
        "04:00",
    ),
    "retry_webhooks": JobSpec(
        "retry_webhooks",
        "Process failed Stripe events again (backoff; dead after WEBHOOK_MAX_ATTEMPTS).",
        _retry_webhooks,
        "every 5 min",
    ),
    "send_refunds": JobSpec(
        "send_refunds",
        "Send to Stripe the refunds of Stripe payments not sent yet (same idempotency key).",
        _send_refunds,
        "every 15 min",
    ),
}
metrics.known(list(JOBS))


def job_spec(name: str) -> JobSpec:
    try:
        return JOBS[name]
    except KeyError:
        raise NotFound(f"unknown job {name!r}; jobs: {', '.join(sorted(JOBS))}") from None


def run_job(
    db: Database,
    settings: Settings,
    name: str,
    as_of: date,
    trigger: str = "cli",
    progress: Progress | None = None,
) -> JobRun:
    """Run the job `name` for the business date `as_of`, recorded as a JobRun. A date outside
    the business date's window is refused (Unprocessable naming `as_of`) before anything
    runs, unless ALLOW_TIME_TRAVEL is on."""
    spec = job_spec(name)
    problem = window_problem(settings, as_of, ahead=False)
    if problem is not None:
        raise Unprocessable(problem, field="as_of")
    started = time.perf_counter()
    with db.session() as session:
        run = JobRun(job=name, as_of=as_of, trigger=trigger, status="running")
        session.add(run)
        session.commit()
        run_id = run.id
    with acting_as(Actor(kind="job", id=f"run_{run_id}", name=name)):
        try:
            stats = spec.function(db, settings, as_of, run_id, progress)
        except Exception as error:
            _finish(db, run_id, "failed", None, "".join(traceback.format_exception(error)))
            metrics.record_run(name, "failed", time.perf_counter() - started)
            log.exception("job failed", extra={"job": name, "run_id": run_id})
            raise
    finished = _finish(db, run_id, "succeeded", stats, None)
    metrics.record_run(name, "succeeded", time.perf_counter() - started)
    return finished


def _finish(
    db: Database, run_id: int, status: str, stats: dict[str, Any] | None, error: str | None
) -> JobRun:
    with db.session() as session:
        run = session.get(JobRun, run_id)
        assert run is not None
        run.status = status
        run.stats = stats
        run.error = error
        run.finished_at = utcnow()
        session.commit()
        return run


def last_runs(db: Database) -> dict[str, JobRun]:
    with db.session() as session:
        runs: dict[str, JobRun] = {}
        for name in JOBS:
            run = session.scalar(
                select(JobRun).where(JobRun.job == name).order_by(JobRun.id.desc()).limit(1)
            )
            if run is not None:
                runs[name] = run
        return runs
