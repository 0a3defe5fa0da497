"""Fixtures and helpers for the Stripe tests: the app pointed at a fake Stripe over real HTTP,
the fake delivering signed webhooks to the live server, and open invoices to pay.

Import the fixtures into a test module (`from .stripe_helpers import fake, settings, stripe`):
its `settings` overrides conftest's, so `app`, `api`, `db` and `live_server` use Stripe."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from devtools.fake_stripe import FakeStripe
from premium_billing.config import Settings
from premium_billing.jobs.runner import run_job
from premium_billing.payments.models import Payment
from premium_billing.reports import check as ledger
from premium_billing.stripe_billing.models import StripeEvent

from ..factories import create_policy

WEBHOOK_SECRET = "whsec_current_test_secret"
OLD_SECRET = "whsec_previous_secret"
EFFECTIVE = date(2026, 3, 10)
_numbers = itertools.count(1)


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    server = FakeStripe(None, WEBHOOK_SECRET).start()
    yield server
    server.stop()
    assert server.errors == []  # the fake itself never crashed


def stripe_settings(database_url: str, fake: FakeStripe, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "allow_time_travel": True,
        "stripe_secret_key": fake.secret_key,
        "stripe_api_base": fake.base_url,
        "stripe_webhook_secret": f"{OLD_SECRET},{WEBHOOK_SECRET}",
        "stripe_max_network_retries": 1,
        "stripe_timeout_seconds": 5.0,
        "webhook_retry_base_seconds": 0.0,
        "webhook_max_attempts": 3,
        "webhook_lock_timeout_ms": 500,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, fake: FakeStripe) -> Settings:
    return stripe_settings(database_url, fake)


@pytest.fixture
def stripe(fake: FakeStripe, live_server: Any) -> FakeStripe:
    """The fake Stripe, delivering its webhooks to the live server."""
    fake.webhook_url = live_server.base_url + "/webhooks/stripe"
    return fake


def open_invoices(
    api: Any, db: Any, settings: Settings, n: int = 1, **policy: Any
) -> list[dict[str, Any]]:
    """n policies effective on EFFECTIVE, invoiced: their first (open) invoices."""
    policy_ids = []
    policy.setdefault("effective_date", EFFECTIVE.isoformat())
    for _ in range(n):
        number = f"PET-{next(_numbers):06d}-{time.monotonic_ns() % 10**6}"
        policy_ids.append(create_policy(api, policy_number=number, **policy)["id"])
    run_job(db, settings, "issue_invoices", date.fromisoformat(policy["effective_date"]))
    invoices = []
    for policy_id in policy_ids:
        found = api.get(f"/invoices?policy_id={policy_id}").json()["data"]
        invoices.append(min(found, key=lambda i: i["due_date"]))
    return invoices


def pay_checkout(api: Any, stripe: FakeStripe, invoice_id: str, card: str = "4242424242424242"):
    response = api.post(f"/invoices/{invoice_id}/checkout")
    assert response.status_code == 200, response.text
    session_id = response.json()["session_id"]
    status = stripe.pay(session_id, card)
    stripe.wait_for_deliveries()
    return session_id, status


def stripe_payments(db: Any) -> list[Payment]:
    with db.session() as session:
        return list(
            session.scalars(select(Payment).where(Payment.source == "stripe").order_by(Payment.id))
        )


def inbox(db: Any) -> list[StripeEvent]:
    with db.session() as session:
        return list(session.scalars(select(StripeEvent).order_by(StripeEvent.id)))


def ledger_problems(db: Any) -> list[str]:
    with db.session() as session:
        return ledger.check(session)
