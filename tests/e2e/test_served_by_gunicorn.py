"""Issue 12, edges (11, 12) behind the production server, gunicorn (`premium-billing serve`):
no version in the Server header, HSTS only on a request that came over HTTPS (as a proxy
on 127.0.0.1 tells gunicorn with X-Forwarded-Proto), and gunicorn's own chunked-body handling
still stopped at the limit."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from premium_billing.stripe_billing.models import StripeEvent
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60


@pytest.fixture
def gunicorn(database_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url, STRIPE_WEBHOOK_SECRET="whsec_gunicorn")
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
            + ["--workers", "1", "wsgi:app"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            try:
                requests.get(base + "/healthz", timeout=2)
                break
            except requests.RequestException:  # not listening, or the worker still booting
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


def test_no_server_version_and_hsts_only_over_https(gunicorn):
    plain = requests.get(gunicorn + "/healthz", timeout=10)
    assert plain.status_code == 200
    server = plain.headers.get("Server", "")
    assert not re.search(r"\d", server) and "werkzeug" not in server.lower(), server
    assert "Strict-Transport-Security" not in plain.headers
    assert plain.headers["X-Content-Type-Options"] == "nosniff"
    assert plain.headers["Cache-Control"] == "no-store"

    https = requests.get(gunicorn + "/healthz", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    assert https.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_a_chunked_webhook_over_its_limit_is_413_through_gunicorn(gunicorn, db: Any):
    def body() -> Iterator[bytes]:
        for _ in range(160):  # 10 MB, 64 KB at a time
            yield b" " * (64 * 1024)

    response = requests.post(gunicorn + "/webhooks/stripe", data=body(), timeout=30)
    assert response.status_code == 413, response.text[:300]
    assert response.headers["Content-Type"] == "application/problem+json"
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(StripeEvent)) == 0
