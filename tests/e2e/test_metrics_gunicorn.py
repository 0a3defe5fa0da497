"""GET /metrics under `premium-billing serve --workers 2` (issue 12, item 13): whichever worker
answers a scrape, the counts are both workers' added up (prometheus_client's multiprocess
mode, the directory set up by the serve command's gunicorn hooks), and a worker that died
keeps its counts in the sums.

A sync worker serves one request at a time: a request whose body has not arrived holds the
worker that took it, so the next requests go to the other one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.multiprocess import MultiProcessCollector

from tests.conftest import free_port
from tests.integration.metrics_helpers import Scrape, scrape

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60
TOKEN = "gunicorn-metrics-token"
REQUESTS = "premium_billing_http_requests_total"


@dataclass
class Served:
    base: str
    master: int
    log: Path

    def workers(self) -> set[int]:
        """The master's live children (zombies excluded)."""
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # it ended while we looked
                continue
            state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
            if int(ppid) == self.master and state != "Z":
                found.add(int(entry.name))
        return found


@contextmanager
def serve(database_url: str, tmp_path: Path, **env: str) -> Iterator[Served]:
    port = free_port()
    environ = dict(
        os.environ,
        DATABASE_URL=database_url,
        METRICS_TOKEN=TOKEN,
        STRIPE_WEBHOOK_SECRET="whsec_gunicorn_metrics",
        LOG_LEVEL="warning",
        **env,
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "premium_billing", "serve", "--port", str(port)]
            + ["--workers", "2"],
            cwd=ROOT,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", server.pid, log)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            if len(served.workers()) == 2:
                try:
                    requests.get(served.base + "/readyz", timeout=10)
                    break
                except requests.RequestException:  # not listening yet
                    pass
            time.sleep(0.2)
        yield served
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


@contextmanager
def held_worker(base: str) -> Iterator[None]:
    """A webhook whose body has not arrived: the worker that took it waits for it, and
    answers (a 400: no signature) when the block ends."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\nConnection: close\r\n\r\n"
        )
        time.sleep(0.5)  # an idle worker takes it at once
        yield
        conn.sendall(b"{}")
        answer = conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def healthz(base: str, n: int) -> None:
    for _ in range(n):
        assert requests.get(base + "/healthz", timeout=10).status_code == 200


def counts(scraped: Scrape) -> tuple[float, float, float]:
    return (
        scraped.value(REQUESTS, method="GET", route="/healthz", status="200"),
        scraped.value(REQUESTS, method="POST", route="/webhooks/stripe", status="400"),
        scraped.value(REQUESTS, method="GET", route="/metrics", status="200"),
    )


def per_process(directory: Path) -> dict[int, float]:
    """Requests counted in each process's own file (the pid is in the file's name)."""
    found = {}
    for path in directory.glob("counter_*.db"):
        metrics = MultiProcessCollector.merge([str(path)], accumulate=False)
        found[int(path.stem.rsplit("_", 1)[1])] = sum(
            s.value for m in metrics if m.name == REQUESTS.removesuffix("_total") for s in m.samples
        )
    return found


def test_a_scrape_adds_up_both_workers_and_a_dead_workers_counts_stay(database_url, tmp_path):
    directory = tmp_path / "metrics"
    with serve(database_url, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(directory)) as served:
        base = served.base
        assert directory.is_dir()  # made by the serve command's on_starting hook
        with held_worker(base):  # worker A holds it; B serves the rest, B answers the scrape
            healthz(base, 5)
            first = scrape(base, TOKEN)
            assert counts(first) == (5, 0, 0)
        with held_worker(base):  # A or B holds it: the other answers with both workers' counts
            healthz(base, 7)
            second = scrape(base, TOKEN)
            assert counts(second) == (12, 1, 1)
        third = scrape(base, TOKEN)
        assert counts(third) == (12, 2, 2)

        workers = served.workers()
        by_process = per_process(directory)
        assert set(by_process) == workers, (by_process, workers, served.log.read_text()[-2000:])
        assert all(n > 0 for n in by_process.values())  # each worker served some
        assert sum(by_process.values()) == third.total(REQUESTS) + 1  # + that scrape itself

        dead = min(workers)
        os.kill(dead, signal.SIGKILL)  # gunicorn starts another worker in its place
        deadline = time.monotonic() + STARTUP_SECONDS
        while dead in served.workers() or len(served.workers()) < 2:
            assert time.monotonic() < deadline, served.log.read_text(errors="replace")[-3000:]
            time.sleep(0.1)
        healthz(base, 3)
        after = scrape(base, TOKEN)
        assert counts(after) == (15, 2, 3)  # the dead worker's counts are still in the sums


def test_without_a_directory_the_server_makes_its_own_and_removes_it(database_url, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    with serve(database_url, tmp_path, **env) as served:
        (made,) = temp.glob("premium-billing-metrics-*")
        with held_worker(served.base):
            healthz(served.base, 4)
        with held_worker(served.base):
            healthz(served.base, 4)
        assert counts(scrape(served.base, TOKEN)) == (8, 2, 0)
        assert len(per_process(made)) == 2
    assert list(temp.iterdir()) == []  # removed when the server stopped


@pytest.fixture(autouse=True)
def _no_inherited_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's environment decides, not the one the tests run in."""
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


def test_runs_in_other_processes_add_up_and_the_last_run_is_the_latest_of_any(tmp_path):
    """The scheduler and an API worker each record a reconciliation run: the counters add up,
    the last run's gauge is the one recorded last, whichever process recorded it."""
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for matched in (5, 3):
        record = (
            "from premium_billing.reconciliation.metrics import record_run; "
            f"record_run('succeeded', {{'matched': {matched}, 'suspense': 1}}, "
            f"{{'reference': {matched}}}, 0.5)"
        )
        subprocess.run([sys.executable, "-c", record], cwd=ROOT, env=env, check=True)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in MultiProcessCollector(None, path=str(tmp_path)).collect()
        for s in metric.samples
    }
    payments = "premium_billing_reconciliation_payments_total"
    assert samples[(payments, (("outcome", "matched"),))] == 8
    assert samples[(payments, (("outcome", "suspense"),))] == 2
    assert (
        samples[("premium_billing_reconciliation_last_run_payments", (("outcome", "matched"),))]
        == 3
    )
    assert samples[("premium_billing_reconciliation_runs_total", (("status", "succeeded"),))] == 2
    assert samples[("premium_billing_reconciliation_matches_total", (("rule", "reference"),))] == 8
