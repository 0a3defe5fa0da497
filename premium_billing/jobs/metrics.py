"""The jobs' metrics (GET /metrics): runs and their durations by job and outcome, counted by
the process that ran them (the scheduler, an API worker for POST /jobs/{name}/runs, the
CLI): see `premium_billing.http.metrics` for how the processes' counts are added up."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

OUTCOMES = ("succeeded", "failed")
# Seconds: a reconciliation of a quiet quarter-hour takes a tenth, a million invoices an hour.
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0)

RUNS = Counter(
    "premium_billing_job_runs",
    "Job runs finished, by job and outcome (succeeded, failed).",
    ("job", "outcome"),
)
RUN_SECONDS = Histogram(
    "premium_billing_job_run_duration_seconds",
    "How long a job run took, from its start to its outcome recorded, by job and outcome.",
    ("job", "outcome"),
    buckets=DURATION_BUCKETS,
)


def known(jobs: list[str]) -> None:
    """Show every job's series from the start, at 0 (a first failure is then a rise)."""
    for job in jobs:
        for outcome in OUTCOMES:
            RUNS.labels(job, outcome)
            RUN_SECONDS.labels(job, outcome)


def record_run(job: str, outcome: str, seconds: float) -> None:
    """A run of `job` ended with `outcome` after `seconds`."""
    RUNS.labels(job, outcome).inc()
    RUN_SECONDS.labels(job, outcome).observe(seconds)
