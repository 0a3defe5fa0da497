"""gunicorn's hooks for the API (`premium-billing serve` passes this module; the checkout's
`gunicorn.conf.py`, which gunicorn reads by itself when started there, is these hooks too).

GET /metrics adds up the counts of every worker (prometheus_client's multiprocess mode, see
`premium_billing.http.metrics`): each worker writes its own files in PROMETHEUS_MULTIPROC_DIR,
which must be in the environment before a worker imports prometheus_client. Hence:

- `on_starting` (the master, before any worker, before the app is imported): when
  PROMETHEUS_MULTIPROC_DIR is set, its directory is made if missing, and left as it is (the
  operator who set it empties it when the service starts, before any of its processes:
  `make run` does, a systemd `RuntimeDirectory=` is made empty; every process of a host
  pointed at it, the scheduler and the drain too, is then counted); unset, the master
  makes a directory of its own under the temporary directory, which its workers inherit,
  and removes it when it exits (`on_exit`).
- `child_exit` (the master, when a worker has exited): its live gauges are dropped
  (`mark_process_dead`); its counters stay in the sums, as counters must.

This module imports nothing of prometheus_client at import: the master would otherwise
choose its single-process mode before the directory is known, and its workers, forked
from it, would inherit that choice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

ENV = "PROMETHEUS_MULTIPROC_DIR"
_made: list[str] = []  # the directory this master made, removed when it exits


def on_starting(server: Any) -> None:
    path = os.environ.get(ENV)
    if path:
        os.makedirs(path, exist_ok=True)
        return
    path = tempfile.mkdtemp(prefix="premium-billing-metrics-")
    os.environ[ENV] = path
    _made.append(path)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    while _made:
        shutil.rmtree(_made.pop(), ignore_errors=True)
