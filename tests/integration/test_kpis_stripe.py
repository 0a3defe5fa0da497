"""The KPIs read from Stripe and autopay: failed payment rate, recovery rate of failed
payments and the median posting latency, on a book paid through the fake Stripe over real
HTTP; both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import select

from premium_billing.jobs.runner import run_job
from premium_billing.stripe_billing.models import StripeEvent

from .stripe_helpers import (
    EFFECTIVE,
    fake,  # noqa: F401
    open_invoices,
    pay_checkout,
    settings,  # noqa: F401
    stripe,  # noqa: F401
)


def kpis(api, start, end):
    response = api.get("/reports/kpis", params={"from": start.isoformat(), "to": end.isoformat()})
    assert response.status_code == 200, response.text
    (usd,) = response.json()["currencies"]
    return usd


def test_failed_payments_their_recovery_and_the_posting_latency(api, db, settings, stripe):  # noqa: F811
    """One autopay invoice whose saved card declines: charged on its due day and retried
    +3, +5, +7 → 4 attempts, 4 failed → failed payment rate 4/4 = 1.0000; 1 invoice with a
    failed payment. It is then paid through Checkout (today), and another invoice too.
    Up to EFFECTIVE + 10 days: not yet recovered (0/1 = 0.0000), no Stripe posting then.
    Up to today: recovered (1/1 = 1.0000); the median latency of the two payments' events
    is the mean of their two latencies (ms), in seconds to 3 places."""
    (invoice,) = open_invoices(api, db, settings, autopay=True)
    response = api.post(f"/policyholders/{invoice['policyholder_id']}/autopay-setup")
    assert response.status_code == 200, response.text
    assert stripe.pay(response.json()["session_id"], "4000000000000341") == 303  # declines
    stripe.wait_for_deliveries()
    for offset in (0, 3, 5, 7):
        run_job(db, settings, "autopay", EFFECTIVE + timedelta(days=offset))
    early = kpis(api, EFFECTIVE, EFFECTIVE + timedelta(days=10))
    assert (early["payment_attempts"], early["failed_payments"], early["failed_payment_rate"]) == (
        4, 4, "1.0000",
    )  # fmt: skip
    assert (early["failed_invoices"], early["recovered_invoices"], early["recovery_rate"]) == (
        1, 0, "0.0000",
    )  # fmt: skip
    assert early["median_posting_latency_seconds"] is None

    (other,) = open_invoices(api, db, settings)
    for paid in (invoice, other):
        pay_checkout(api, stripe, paid["id"])
        assert api.get(f"/invoices/{paid['id']}").json()["status"] == "paid"
    today = datetime.now(UTC).date()
    late = kpis(api, EFFECTIVE, today)
    assert (late["failed_invoices"], late["recovered_invoices"], late["recovery_rate"]) == (
        1, 1, "1.0000",
    )  # fmt: skip
    with db.session() as session:
        latencies = sorted(
            session.scalars(
                select(StripeEvent.posting_latency_ms).where(
                    StripeEvent.posting_latency_ms.is_not(None),
                    StripeEvent.payment_id.is_not(None),
                )
            )
        )
    assert len(latencies) == 2
    expected = (Decimal(latencies[0] + latencies[1]) / 2000).quantize(
        Decimal("0.001"), rounding=ROUND_HALF_UP
    )
    assert late["median_posting_latency_seconds"] == str(expected)
