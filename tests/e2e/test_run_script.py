"""`make run`'s script: a SIGTERM to it stops every process it started (fake Stripe,
scheduler, webhook drain, API server and its workers), not only itself."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY_FILE = ROOT / "var" / "demo-admin-key"  # the demo writes it; restored afterwards
STARTUP_SECONDS = 180  # migrate, a small demo book's year, the services, three Checkouts
STOP_SECONDS = 10  # each service stops on SIGTERM in a second or two


def _group(pgid: int) -> dict[int, str]:
    """The live processes (zombies excluded) of a process group: pid -> command line."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # it ended while we looked
            continue
        state, _ppid, group = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(group) == pgid and state != "Z":
            found[int(entry.name)] = command
    return found


def _output(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


def test_sigterm_to_the_script_stops_every_process_it_started(tmp_path):
    port = free_port()
    stripe_port = free_port()
    while stripe_port == port:
        stripe_port = free_port()
    smtp_port = free_port()
    while smtp_port in (port, stripe_port):
        smtp_port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PUBLIC_BASE_URL", "STRIPE_API_BASE", "WEBHOOK_PROCESSING")
    }
    metrics = tmp_path / "metrics"  # not the checkout's var/metrics: a demo may be running
    metrics.mkdir()
    (metrics / "counter_999999.db").write_bytes(b"")  # an earlier run's: the script empties it
    env.update(
        PROMETHEUS_MULTIPROC_DIR=str(metrics),
        DATABASE_URL=f"sqlite:///{tmp_path / 'demo.db'}",
        PORT=str(port),
        STRIPE_FAKE_PORT=str(stripe_port),
        STRIPE_SECRET_KEY="",  # so the script starts the fake Stripe too
        DEMO_POLICYHOLDERS="24",  # a small book: the year simulated in seconds
        SMTP_HOST="",  # and the SMTP server on loopback
        SMTP_PORT=str(smtp_port),
        BIN=str(Path(sys.executable).parent),
    )
    log = tmp_path / "run-demo.log"
    saved_key = KEY_FILE.read_bytes() if KEY_FILE.exists() else None
    with log.open("wb") as out:
        script = subprocess.Popen(
            ["bash", "scripts/run-demo.sh"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, pgid = its pid
        )
    pgid = script.pid
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert script.poll() is None, f"run-demo.sh exited early:\n{_output(log)}"
            assert time.monotonic() < deadline, f"no /healthz answer:\n{_output(log)}"
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:  # not listening yet, or workers still booting
                pass
            time.sleep(0.2)
        # Serving, a few payers pay through Checkout, then it says what to open.
        while "Ctrl-C stops" not in log.read_text():
            assert script.poll() is None, f"run-demo.sh exited early:\n{_output(log)}"
            assert time.monotonic() < deadline, f"no summary:\n{_output(log)}"
            time.sleep(0.2)
        printed = log.read_text()
        assert printed.count("paid through the fake Stripe and its signed webhook") == 3, printed
        summary = printed.split("The demo serves", 1)[1]
        for line in (
            "simulated ",
            "the demo took ",
            f"http://127.0.0.1:{port}/portal/",
            "try: curl",
            f"dashboard: http://127.0.0.1:{port}/dashboard/",
        ):
            assert line in summary, (line, summary)
        assert f"http://127.0.0.1:{port}/api/v1/docs" in log.read_text()
        assert "docs/api.md" in log.read_text()
        commands = " ".join(_group(pgid).values())
        for service in (
            "fake_stripe",
            "premium-billing scheduler",
            "drain-webhooks",
            "send-notifications",
            "aiosmtpd",
            "gunicorn",
        ):
            assert service in commands, (service, commands)
        # GET /metrics: every process of the demo counts in the one directory, emptied first.
        assert "/metrics" in log.read_text()
        key = KEY_FILE.read_text().strip()
        scraped = requests.get(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert scraped.status_code == 200 and "premium_billing_job_runs_total" in scraped.text
        counting = {int(p.stem.rsplit("_", 1)[1]) for p in metrics.glob("*.db")}
        assert 999999 not in counting
        for service in ("premium-billing scheduler", "drain-webhooks"):
            (pid,) = [pid for pid, command in _group(pgid).items() if service in command]
            assert pid in counting, (service, counting)

        os.kill(script.pid, signal.SIGTERM)  # the script only, not its group
        deadline = time.monotonic() + STOP_SECONDS
        while _group(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _group(pgid)
        assert left == {}, f"still running {STOP_SECONDS} s after SIGTERM: {left}\n{_output(log)}"
        assert script.wait(timeout=5) == -signal.SIGTERM  # it died of the signal it was sent
    finally:
        if _group(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        if script.poll() is None:
            script.wait(timeout=10)
        if saved_key is None:
            KEY_FILE.unlink(missing_ok=True)
        else:
            KEY_FILE.write_bytes(saved_key)
