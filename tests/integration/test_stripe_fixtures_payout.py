"""`payout.paid` from Stripe's published payout, while Stripe cannot be reached (the app's
STRIPE_API_BASE on a closed port), inline and deferred (issue 13, item 8): the event waits
`failed` with its reason, the day's reconciliation report lists the payout under
`pending_payouts`; once Stripe answers again the retry job records it."""

from __future__ import annotations

import calendar
import socket
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from devtools.fake_stripe import FakeStripe
from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.jobs.runner import run_job
from premium_billing.stripe_billing.gateway import StripeGateway
from premium_billing.stripe_billing.models import StripePayout

from .stripe_fixtures import replay, stripe_object
from .stripe_helpers import (
    fake,  # noqa: F401
    ledger_problems,
    stripe_settings,
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["inline", "deferred"])
def settings(request: Any, database_url: str, fake: FakeStripe) -> Settings:  # noqa: F811
    """The app's settings with Stripe out of reach."""
    return stripe_settings(
        database_url,
        fake,
        webhook_processing=request.param,
        stripe_api_base=f"http://127.0.0.1:{_closed_port()}",
        stripe_max_network_retries=0,
    )


def _payout_at_stripe(fake: FakeStripe) -> dict[str, Any]:  # noqa: F811
    """A payout Stripe (the fake, not delivering its events) made of one paid charge."""
    fake.auto_deliver = False
    gateway = StripeGateway(fake.secret_key, api_base=fake.base_url)
    checkout = gateway.create_checkout_session(
        amount=12000, currency="USD", description="fixture payout", metadata={},
        client_reference_id=None, success_url="https://example.com/ok",
        cancel_url="https://example.com/no", customer=None, idempotency_key="fx-payout",
    )  # fmt: skip
    assert fake.pay(checkout.id) == 303
    return fake.payout("usd")


def test_payout_paid_without_stripe_waits_and_shows_as_pending(
    database_url,
    fake,  # noqa: F811
    settings,
    live_server,
    api,
    db,  # noqa: F811
):
    made = _payout_at_stripe(fake)
    today = business_date(settings.timezone)
    payout = stripe_object(
        "payout",
        id=made["id"],
        amount=made["amount"],
        currency="usd",
        status="paid",
        arrival_date=calendar.timegm(today.timetuple()),
        balance_transaction=made["balance_transaction"],
    )
    row = replay(live_server.base_url, db, "payout.paid", payout)
    assert row.status == "failed"
    assert "cannot be listed from Stripe" in row.last_error and made["id"] in row.last_error
    report = api.get(f"/reports/reconciliation?date={today}").json()
    (pending,) = report["pending_payouts"]
    assert (pending["payout_id"], pending["amount"], pending["currency"]) == (
        made["id"], made["amount"], "USD",
    )  # fmt: skip
    assert (pending["status"], pending["arrival_date"]) == ("failed", today.isoformat())
    assert "cannot be listed" in pending["reason"] and pending["attempts"] == 1
    assert report["payouts_unmatched"] == []
    # Not in the report of the day before it arrives.
    earlier = date.fromordinal(today.toordinal() - 1)
    assert api.get(f"/reports/reconciliation?date={earlier}").json()["pending_payouts"] == []
    assert ledger_problems(db) == []

    # Still out of reach: retried, still pending, the reason kept.
    assert run_job(db, settings, "retry_webhooks", today).stats["failed"] == 1
    (pending,) = api.get(f"/reports/reconciliation?date={today}").json()["pending_payouts"]
    assert pending["attempts"] == 2 and "cannot be listed" in pending["reason"]

    # Stripe answers again: the retry job records it; it is no longer pending.
    online = stripe_settings(database_url, fake)
    stats = run_job(db, online, "retry_webhooks", today).stats
    assert stats["processed"] == 1, stats
    with db.session() as session:
        recorded = session.scalar(select(StripePayout).where(StripePayout.payout_id == made["id"]))
        assert recorded is not None and recorded.amount == made["amount"]
    report = api.get(f"/reports/reconciliation?date={today}").json()
    assert report["pending_payouts"] == []
    assert [p["payout_id"] for p in report["payouts_unmatched"]] == [made["id"]]
    assert ledger_problems(db) == []
