"""The senders' throughput: N invoices issued (N `invoice_issued` notices and N
`invoice.issued` events for one endpoint), then the email sender to an SMTP server on
loopback (aiosmtpd) and the event sender to an HTTP receiver on loopback that verifies
every signature with `standardwebhooks` (devtools/sinks.py), each until its outbox is
empty or --max-seconds. Targets: >= 100 emails/s and >= 100 events/s.

`python -m bench.bench_senders --n 2000 --admin-url postgresql://postgres@127.0.0.1/postgres`
(creates and drops the database `pb_bench_senders`; the receivers run in a process of
their own, `python -m devtools.sinks`, and count what they received: each once).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy import create_engine, text

DB_NAME = "pb_bench_senders"
EFFECTIVE = date(2026, 3, 10)
TARGET = 100.0  # per second, each sender


def _prepare(admin_url: str, n: int, hook_url: str) -> tuple[str, str, dict[str, float]]:
    from premium_billing.bootstrap import database
    from premium_billing.config import Settings
    from premium_billing.db.engine import normalize_url
    from premium_billing.db.migrate import upgrade
    from premium_billing.jobs.runner import run_job
    from premium_billing.outbound.endpoints import create_endpoint

    from .seed import seed_monthly_policies

    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    url = normalize_url(admin_url).rpartition("/")[0] + f"/{DB_NAME}"
    upgrade(url)
    db = database(url)
    seed_monthly_policies(db.engine, n, EFFECTIVE, prefix="SND")
    with db.session() as session:
        secret = create_endpoint(session, hook_url, ["invoice.issued"]).secret
    started = time.perf_counter()
    run = run_job(
        db, Settings(database_url=url, allow_time_travel=True), "issue_invoices", EFFECTIVE
    )
    issue_seconds = time.perf_counter() - started
    db.dispose()
    return url, secret, {"invoices": run.stats["invoices_issued"], "issue_s": issue_seconds}


def _drain(one_pass: Callable[[], Any], max_seconds: float) -> dict[str, Any]:
    """Passes until one claims nothing or the time is up: what was sent, how fast, and the
    sender's CPU per message (on a loaded machine the rate falls, the CPU does not)."""
    sent = passes = 0
    started, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - started < max_seconds:
        stats = one_pass()
        passes += 1
        sent += stats.sent
        if stats.claimed == 0:
            break
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    return {
        "sent": sent,
        "passes": passes,
        "seconds": round(seconds, 3),
        "per_second": round(sent / seconds, 1) if seconds else None,
        "cpu_ms_each": round(cpu * 1000 / sent, 2) if sent else None,
        "cpu_bound_per_second": round(sent / cpu, 1) if cpu else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="invoices: emails and events")
    parser.add_argument("--admin-url", required=True, help="a PostgreSQL URL to create the db")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="per sender")
    parser.add_argument("--batch", type=int, default=200, help="SENDER_BATCH")
    parser.add_argument("--connections", type=int, default=4, help="SMTP_CONNECTIONS")
    args = parser.parse_args(argv)

    from devtools.sinks import free_port
    from premium_billing.bootstrap import database
    from premium_billing.config import Settings
    from premium_billing.db.engine import normalize_url
    from premium_billing.notifications.sender import send_pass
    from premium_billing.outbound.sender import deliver_pass

    smtp_port, http_port = free_port(), free_port()
    figures: dict[str, Any] = {"n": args.n, "batch": args.batch, "connections": args.connections}
    url, secret, prepared = _prepare(args.admin_url, args.n, f"http://127.0.0.1:{http_port}/hooks")
    figures.update(prepared)
    # The receivers in a process of their own: the senders' figures are the senders'.
    sinks = subprocess.Popen(
        [sys.executable, "-m", "devtools.sinks", "--smtp-port", str(smtp_port),
         "--http-port", str(http_port), "--secret", secret],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    settings = Settings(
        database_url=url,
        smtp_port=smtp_port,
        sender_batch=args.batch,
        smtp_connections=args.connections,
        log_level="warning",
    )
    db = database(url)
    try:
        assert sinks.stdout is not None and sinks.stdout.readline().strip() == "ready"
        figures["emails"] = _drain(lambda: send_pass(db, settings), args.max_seconds)
        figures["events"] = _drain(lambda: deliver_pass(db, settings), args.max_seconds)
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/stats", timeout=10) as r:
            figures["received"] = json.loads(r.read())
    finally:
        sinks.terminate()
        sinks.wait(timeout=30)
        db.dispose()
        admin = create_engine(normalize_url(args.admin_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        admin.dispose()
    emails, events, received = figures["emails"], figures["events"], figures["received"]
    ok = (
        (emails["per_second"] or 0) >= TARGET
        and (events["per_second"] or 0) >= TARGET
        and received["emails"] == received["distinct_message_ids"] == args.n
        and received["events"] == received["distinct_webhook_ids"] == args.n
        and received["rejected"] == 0
    )
    figures["target_per_second"] = TARGET
    figures["ok"] = ok
    figures["load_average"] = os.getloadavg()[0]
    print(json.dumps(figures))
    print(
        f"emails: {emails['sent']} in {emails['seconds']} s = {emails['per_second']}/s; "
        f"events: {events['sent']} in {events['seconds']} s = {events['per_second']}/s; "
        f"received {received['emails']} emails, {received['events']} verified events, "
        f"each once (target >= {TARGET:.0f}/s each): {'ok' if ok else 'BELOW TARGET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
