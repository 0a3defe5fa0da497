"""Pay now, end to end in a real browser: our checkout link → the (fake) Stripe Checkout
page → Pay → signed webhooks to our live server → the invoice is paid → back on our page."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.fake_stripe import FakeStripe
from premium_billing.config import Settings
from tests.conftest import LiveServer, free_port
from tests.integration.stripe_helpers import fake, open_invoices, stripe, stripe_settings

_ = (fake, stripe)  # fixtures, used by name


@pytest.fixture
def public_port() -> int:
    return free_port()


@pytest.fixture
def settings(database_url: str, fake: FakeStripe, public_port: int) -> Settings:  # noqa: F811
    # Checkout returns the policyholder to PUBLIC_BASE_URL: here, the live server.
    return stripe_settings(database_url, fake, public_base_url=f"http://127.0.0.1:{public_port}")


@pytest.fixture
def live_server(app: Any, public_port: int) -> Iterator[LiveServer]:
    with LiveServer(app, public_port) as server:
        yield server


def test_a_policyholder_pays_an_invoice_online(api, db, settings, stripe, browser):
    invoice = open_invoices(api, db, settings)[0]
    response = api.post(f"/invoices/{invoice['id']}/checkout")
    assert response.status_code in (200, 201), response.text
    checkout_url = response.json()["checkout_url"]
    public = settings.public_base_url.rstrip("/")
    assert api.base_url == public + "/api/v1"
    page = browser.new_page()
    page.goto(checkout_url)
    assert f"{invoice['total'] / 100:.2f}" in page.content()
    page.get_by_role("button", name="Pay").click()
    page.wait_for_url(public + "/checkout/done**")  # back with us, the page loaded
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        current = api.get(f"/invoices/{invoice['id']}").json()
        if current["status"] == "paid":
            break
        time.sleep(0.1)
    assert current["status"] == "paid" and current["amount_due"] == 0
    payments = api.get("/payments", params={"status": "applied"}).json()["data"]
    assert [(p["source"], p["amount"]) for p in payments] == [("stripe", invoice["total"])]
    assert page.url.startswith(public + "/checkout/done")
    assert page.title() == "Thank you — payment received"
    page.close()
