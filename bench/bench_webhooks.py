"""Webhook posting throughput: gunicorn serving the real app on PostgreSQL, signed
`payment_intent.succeeded` events for N distinct open invoices sent from a second process
over loopback; then the floor, a minimal Flask app (bench/webhook_floor.py) that only
verifies the signature and inserts the raw event, under the same load, in the same run.

`python -m bench.bench_webhooks --n 5000 --admin-url postgresql://postgres@127.0.0.1/postgres`
(creates and drops the database `pb_bench_webhooks`).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
SECRET = "whsec_bench"
DB_NAME = "pb_bench_webhooks"
EFFECTIVE = date(2026, 3, 10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(admin_url: str, n: int) -> tuple[str, list[tuple[int, int, str]]]:
    from premium_billing.bootstrap import database
    from premium_billing.config import Settings
    from premium_billing.db.engine import normalize_url
    from premium_billing.db.migrate import upgrade
    from premium_billing.jobs.runner import run_job

    from .seed import seed_monthly_policies

    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    url = normalize_url(admin_url).rpartition("/")[0] + f"/{DB_NAME}"
    upgrade(url)
    db = database(url)
    seed_monthly_policies(db.engine, n, EFFECTIVE, prefix="WH")
    run_job(db, Settings(database_url=url, allow_time_travel=True), "issue_invoices", EFFECTIVE)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE floor_events (id bigserial PRIMARY KEY, event_id text UNIQUE, "
                "type text, payload text, received_at timestamptz DEFAULT now())"
            )  # fmt: skip
        )
        invoices = [
            (int(r[0]), int(r[1]), str(r[2]))
            for r in conn.execute(
                text(
                    "SELECT id, amount_due, number FROM invoices WHERE status = 'open' ORDER BY id"
                )  # fmt: skip
            )
        ]
    db.dispose()
    return url, invoices


def _gunicorn(target: str, port: int, env: dict[str, str], workers: int) -> subprocess.Popen:
    command = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "--workers", str(workers),
        "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning",
        target,
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError(f"{target} did not start")


def _events(invoices: list[tuple[int, int, str]], tag: str) -> list[bytes]:
    now = 0  # stamped with the send time by the client (b'"created": 0')
    bodies = []
    for number, (invoice_id, amount, invoice_number) in enumerate(invoices):
        pi = {
            "id": f"pi_bench_{tag}_{number}",
            "object": "payment_intent",
            "amount": amount,
            "amount_received": amount,
            "currency": "usd",
            "created": now,
            "status": "succeeded",
            "latest_charge": f"ch_bench_{tag}_{number}",
            "metadata": {"invoice_id": f"inv_{invoice_id}", "invoice_number": invoice_number},
        }
        event = {
            "id": f"evt_bench_{tag}_{number}",
            "object": "event",
            "created": now,
            "type": "payment_intent.succeeded",
            "data": {"object": pi},
            "livemode": False,
        }
        bodies.append(json.dumps(event).encode())
    return bodies


def load(port: int, bodies: list[bytes], concurrency: int, limit_s: float) -> dict[str, float]:
    """Send every body once (signed now) from `concurrency` keep-alive connections."""
    from premium_billing.stripe_billing.gateway import sign_webhook

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))
    deadline = time.monotonic() + limit_s

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        while time.monotonic() < deadline:
            with lock:
                index = next(cursor, None)
            if index is None:
                break
            stamp = int(time.time())
            body = bodies[index].replace(b'"created": 0', b'"created": %d' % stamp)
            signature = sign_webhook(body, SECRET, stamp)
            headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
            started = time.perf_counter()
            conn.request("POST", "/webhooks/stripe", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "sent": len(latencies),
        "errors": errors[0],
        "seconds": elapsed,
        "events_per_s": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0,
    }


def _load_process(port: int, bodies: list[bytes], concurrency: int, limit_s: float) -> dict:
    """Run `load` in a second process (the client must not share the server's CPU budget
    with the benchmark's own interpreter)."""
    payload = json.dumps(
        {"port": port, "bodies": [b.decode() for b in bodies], "c": concurrency, "t": limit_s}
    )
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_webhooks", "--client"],
        input=payload, capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _client_main() -> None:
    job = json.loads(sys.stdin.read())
    bodies = [b.encode() for b in job["bodies"]]
    print(json.dumps(load(job["port"], bodies, job["c"], job["t"])))


def _wait_drained(url: str, expected: int, limit: float = 600.0) -> float:
    """Seconds until every app event is posted (deferred mode drains after answering)."""
    engine = create_engine(url)
    start = time.perf_counter()
    try:
        while time.perf_counter() - start < limit:
            with engine.connect() as conn:
                left = conn.execute(text(
                    "SELECT count(*) FROM stripe_events WHERE event_id LIKE 'evt_bench_app%'"
                    " AND status = 'queued'")).scalar_one()  # fmt: skip
            if left == 0:
                break
            time.sleep(0.2)
    finally:
        engine.dispose()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument(
        "--processing",
        choices=("inline", "deferred"),
        default="deferred",
        help="WEBHOOK_PROCESSING of the app: post in the request, or store, answer and drain",
    )
    parser.add_argument(
        "--drainer",
        choices=("process", "thread"),
        default="process",
        help="deferred: a `premium-billing drain-webhooks` process, or a thread in each worker",
    )
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        _client_main()
        return
    url, invoices = _prepare(args.admin_url, args.n)
    half = len(invoices) // 2
    warm, measured = invoices[:half], invoices[half:]
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "STRIPE_WEBHOOK_SECRET": SECRET,
        "PYTHONPATH": str(ROOT),
        "WEBHOOK_PROCESSING": args.processing,
        "WEBHOOK_DRAIN_IN_API": str(args.drainer == "thread").lower(),
        "LOG_LEVEL": "warning",
    }  # LOG_LEVEL warning: no line per request
    results = {}
    for name, target in (("floor", "bench.webhook_floor:app"), ("app", "wsgi:app")):
        port = _free_port()
        proc = _gunicorn(target, port, env, args.workers)
        drainer = None
        if name == "app" and args.processing == "deferred" and args.drainer == "process":
            drainer = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "premium-billing"), "drain-webhooks"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            tag = name
            _load_process(port, _events(warm[:200], f"{tag}w"), args.concurrency, 30)
            results[name] = _load_process(
                port, _events(measured, tag), args.concurrency, args.time_limit
            )
            if name == "app":
                results["drained_s"] = _wait_drained(url, len(measured) + min(200, half))
        finally:
            for p in (proc, drainer):
                if p is not None:
                    p.terminate()
                    p.wait(timeout=30)
    engine = create_engine(url)
    with engine.connect() as conn:
        posted = conn.execute(
            text("SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY posting_latency_ms),"
                 " percentile_cont(0.99) WITHIN GROUP (ORDER BY posting_latency_ms),"
                 " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM"
                 " processed_at - received_at) * 1000) FROM stripe_events"
                 " WHERE event_id LIKE 'evt_bench_app\\_%' AND posting_latency_ms IS NOT NULL")
        ).one()  # fmt: skip
        paid = conn.execute(
            text("SELECT count(*) FROM invoices WHERE status = 'paid'")
        ).scalar_one()
    engine.dispose()
    app, floor = results["app"], results["floor"]
    ratio = app["events_per_s"] / floor["events_per_s"] if floor["events_per_s"] else 0.0
    print(f"events: {len(measured)} measured (after {min(200, half)} warm-up), "
          f"{args.workers} gunicorn workers, {args.concurrency} client connections")  # fmt: skip
    for name, r in (("floor", floor), ("app", app)):
        print(f"{name:>5}: {r['sent']:.0f} sent, {r['errors']:.0f} errors, "
              f"{r['events_per_s']:,.0f} events/s, p50 {r['p50_ms']:.1f} ms, "
              f"p99 {r['p99_ms']:.1f} ms")  # fmt: skip
    print(f"posted: {posted[0]} payments (invoices paid: {paid}); posting latency from Stripe's "
          f"event time p50 {posted[1]:.0f} ms, p99 {posted[2]:.0f} ms (event time has 1 s "
          f"resolution); receipt to commit p50 {posted[3]:.1f} ms")  # fmt: skip
    drainer_text = f", drained by a {args.drainer}" if args.processing == "deferred" else ""
    print(f"processing: {args.processing}{drainer_text}; queue drained "
          f"{results['drained_s']:.1f} s after the last answer")  # fmt: skip
    print(f"ratio app/floor: {ratio:.2f}  (targets: >= 1,000 events/s, p99 <= 50 ms, >= 0.5)")


if __name__ == "__main__":
    main()
