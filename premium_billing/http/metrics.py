"""GET /metrics: Prometheus metrics for the operator, right however many processes serve.

What is counted here: every request answered, by method, route template
(`/api/v1/policies/<policy_id>`: never the raw path, so no ids and a bounded number of
series; a path no route matches is `unmatched`) and status, with a latency histogram per
route. The features count their own (each in its `metrics` module: job runs, Stripe posting
latency, reconciliation outcomes) and add what is read at scrape time (the webhook queue
depth, from the inbox) with `add_collector`, which the bootstrap calls: this module knows no
feature.

Several processes (gunicorn's workers, the scheduler, the webhook drain): with
PROMETHEUS_MULTIPROC_DIR in a process's environment when it starts, prometheus_client
writes the process's counts to files of its own in that directory, and a scrape, answered
by any worker, adds up the files of every process that wrote there, live or dead
(prometheus_client's multiprocess mode). `premium-billing serve` makes gunicorn set it up
(`premium_billing.gunicorn_config`); `make run` gives every process of the demo one
directory, emptied when the demo starts. Without it (the tests' server thread, the
development server) a scrape shows this process's own counts.

Who may read them: `Authorization: Bearer <METRICS_TOKEN>` (the scraper's token, good for
nothing else; Prometheus sends it with `authorization: {credentials: ...}`), or an admin API
key. Anything else is a 401 (a key of another role: 403). The metrics name no person and no
amount of anyone's, only counts, durations and route templates.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterable, Iterator
from typing import Protocol

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import REGISTRY, Counter, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, choose_encoder, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from premium_billing.http.auth import bearer_token, unauthorized
from premium_billing.http.keys import find_key
from premium_billing.http.problems import problem
from premium_billing.http.session import db_session
from premium_billing.logging_setup import route_template

# No `_created` series: multiprocess mode has none, so a scrape reads the same either way.
disable_created_metrics()

COLLECTORS = "premium_billing.metrics_collectors"
# Any other method (a client may send anything) is counted as "other": bounded series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds: a health check takes a millisecond, a bank file of 100 MB a minute.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter(
    "premium_billing_http_requests",
    "HTTP requests answered, by method, route template and status.",
    ("method", "route", "status"),
)
REQUEST_SECONDS = Histogram(
    "premium_billing_http_request_duration_seconds",
    "Time from a request's arrival in the app to its response, by method and route template.",
    ("method", "route"),
    buckets=LATENCY_BUCKETS,
)


class Collector(Protocol):
    """What prometheus_client calls at scrape time (a custom collector)."""

    def collect(self) -> Iterable[Metric]: ...


def multiprocess_dir() -> str | None:
    """The directory of multiprocess mode, when this process counts in it."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def add_collector(app: Flask, collector: Collector) -> None:
    """Read `collector` on every scrape of this app (e.g. a gauge read from the database)."""
    app.extensions.setdefault(COLLECTORS, []).append(collector)


class Scrape:
    """What one scrape exposes: the counts of every process (multiprocess mode) or of this
    one, then the app's collectors."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        path = multiprocess_dir()
        if path is not None:
            # Each worker's own process metrics (memory, CPU) would be one arbitrary worker's:
            # only the files, added up.
            yield from MultiProcessCollector(None, path=path).collect()
        else:
            yield from REGISTRY.collect()
        for collector in self.app.extensions.get(COLLECTORS, []):
            yield from collector.collect()


def _started() -> None:
    g.metrics_started = time.perf_counter()


def _counted(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    method = request.method if request.method in METHODS else "other"
    route = route_template()
    REQUESTS.labels(method, route, str(response.status_code)).inc()
    if started is not None:
        REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
    return response


def register_request_metrics(app: Flask) -> None:
    """Registered before every other hook: its clock starts first, its count is the last
    thing done to a response (after_request hooks run in reverse order), refusals included."""
    app.before_request(_started)
    app.after_request(_counted)


def _authorized() -> Response | None:
    token = bearer_token()
    if token is None:
        return unauthorized("Missing bearer token (METRICS_TOKEN, or an admin API key).")
    expected = current_app.config["SETTINGS"].metrics_token
    if expected and hmac.compare_digest(token.encode(), expected.encode()):
        return None
    key = find_key(db_session(), token)
    if key is None:
        return unauthorized("The token is neither METRICS_TOKEN nor an API key.")
    if key.role != "admin":
        return problem(403, f"The {key.role!r} role may not read the metrics.")
    return None


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """The Prometheus text format (OpenMetrics when the scraper asks for it)."""
    denied = _authorized()
    if denied is not None:
        return denied
    try:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    except (TypeError, ValueError):  # prometheus_client compares a version such as "1.x"
        encode, content_type = generate_latest, CONTENT_TYPE_LATEST
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return Response(encode(Scrape(app)), content_type=content_type)
