"""Helpers for the portal's tests: a policyholder with overdue invoices, their portal link,
and a browser-like client (cookies kept, the CSRF token read from the page)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import requests

from devtools.fake_stripe import FakeStripe
from premium_billing.config import Settings
from premium_billing.jobs.runner import run_job

from ..conftest import LiveServer, free_port
from ..factories import create_policy, create_policyholder, pet_line
from .stripe_helpers import stripe_settings

EFFECTIVE = date(2026, 3, 10)
INVOICED_TO = date(2026, 4, 1)  # monthly from 03-10: the 03-10 and 04-10 installments
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def public_port() -> int:
    return free_port()


@pytest.fixture
def processing() -> str:
    """WEBHOOK_PROCESSING (a test may parametrize it)."""
    return "inline"


@pytest.fixture
def settings(database_url: str, fake: FakeStripe, public_port: int, processing: str) -> Settings:
    # The portal's links and Checkout's return pages are under PUBLIC_BASE_URL: the live
    # server's address.
    return stripe_settings(
        database_url,
        fake,
        public_base_url=f"http://127.0.0.1:{public_port}",
        webhook_processing=processing,
        webhook_drain_delay_ms=20,
    )


def wait_until(check: Any, timeout: float = 20) -> Any:
    """Poll `check()` until it is true (deferred webhooks post in the drain thread)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture
def live_server(app: Any, public_port: int) -> Iterator[LiveServer]:
    with LiveServer(app, public_port) as server:
        yield server


def holder_with_invoices(
    api: Any, db: Any, settings: Settings, name: str = "Ann Lee", policies: int = 2
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A policyholder with `policies` monthly pet policies effective EFFECTIVE, invoiced to
    INVOICED_TO (two invoices each, overdue on the business date): (holder, invoices by due
    date)."""
    holder = create_policyholder(api, name=name, email="holder@example.com")
    stamp = time.monotonic_ns() % 10**8
    for n in range(policies):
        create_policy(
            api,
            holder["id"],
            policy_number=f"PET-{stamp}-{n}",
            effective_date=EFFECTIVE.isoformat(),
            lines=[pet_line(("Rex", "Mia", "Tom")[n % 3], 48000 + 1200 * n)],
        )
    run_job(db, settings, "issue_invoices", INVOICED_TO)
    invoices = api.get("/invoices", params={"policyholder_id": holder["id"]}).json()["data"]
    return holder, sorted(invoices, key=lambda i: (i["due_date"], i["id"]))


def portal_link(api: Any, holder_id: str) -> str:
    response = api.post(f"/policyholders/{holder_id}/portal-link")
    assert response.status_code == 200, response.text
    return str(response.json()["url"])


class Browser:
    """A client keeping cookies, as a browser would: GET a page, POST its forms."""

    def __init__(self) -> None:
        self.http = requests.Session()

    def get(self, url: str, **kw: Any) -> requests.Response:
        return self.http.get(url, timeout=30, **kw)

    def csrf(self, url: str) -> str:
        page = self.get(url)
        assert page.status_code == 200, page.text
        found = CSRF.search(page.text)
        assert found, "no CSRF token on the page"
        return found.group(1)

    def post_form(self, url: str, data: dict[str, str], page: str) -> requests.Response:
        """POST a form of `page` (its CSRF token added), not following the redirect."""
        return self.http.post(
            url, data={**data, "csrf_token": self.csrf(page)}, allow_redirects=False, timeout=30
        )
