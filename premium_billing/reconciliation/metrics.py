"""Reconciliation's metrics (GET /metrics): what each run did with the payments it examined,
counted by the process that ran it (POST /reconciliation/runs in an API worker, the
scheduler's `reconcile` job, the CLI); `premium_billing.http.metrics` adds the processes up.

- `premium_billing_reconciliation_payments_total{outcome}`: payments posted and fully
  applied as their match said (`matched`), posted as a part payment (`partially_matched`),
  or left in the suspense queue (`suspense`: no confident match, a likely duplicate, a
  return, or a match the posting engine refused); summed over the runs.
- `premium_billing_reconciliation_last_run_payments{outcome}`: the same for the most recent
  run of any process (a gauge: the run's own figures).
- `premium_billing_reconciliation_matches_total{rule}`: posted matches by the rule that
  made them (stripe_metadata, reference, fuzzy_reference, payer_name, ...).
- runs by status and their duration.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

OUTCOMES = ("matched", "partially_matched", "suspense")
STATUSES = ("succeeded", "failed")
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

RUNS = Counter(
    "premium_billing_reconciliation_runs",
    "Reconciliation runs finished, by status (succeeded, failed).",
    ("status",),
)
RUN_SECONDS = Histogram(
    "premium_billing_reconciliation_run_duration_seconds",
    "How long a reconciliation run took.",
    buckets=DURATION_BUCKETS,
)
PAYMENTS = Counter(
    "premium_billing_reconciliation_payments",
    "Payments the reconciliation runs decided, by outcome (matched, partially_matched, suspense).",
    ("outcome",),
)
LAST_RUN = Gauge(
    "premium_billing_reconciliation_last_run_payments",
    "The most recent reconciliation run's payments, by outcome.",
    ("outcome",),
    multiprocess_mode="mostrecent",  # of every process, the value set last
)
MATCHES = Counter(
    "premium_billing_reconciliation_matches",
    "Matches posted by the reconciliation runs, by the rule that made them.",
    ("rule",),
)
for _outcome in OUTCOMES:
    PAYMENTS.labels(_outcome)
for _status in STATUSES:
    RUNS.labels(_status)


def record_run(
    status: str, outcomes: Mapping[str, int], rules: Mapping[str, int], seconds: float
) -> None:
    """A run ended with `status` after `seconds`: `outcomes` its payments by outcome, `rules`
    its posted matches by rule."""
    RUNS.labels(status).inc()
    RUN_SECONDS.observe(seconds)
    for outcome in OUTCOMES:
        PAYMENTS.labels(outcome).inc(outcomes.get(outcome, 0))
        LAST_RUN.labels(outcome).set(outcomes.get(outcome, 0))
    for rule, count in rules.items():
        MATCHES.labels(rule).inc(count)
