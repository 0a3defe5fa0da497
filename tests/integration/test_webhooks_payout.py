"""payout.paid is kept for deposit reconciliation (issue 6's deposits.record_payout)."""

from __future__ import annotations

from .stripe_helpers import (
    fake,  # noqa: F401
    inbox,
    open_invoices,
    pay_checkout,
    settings,  # noqa: F401
    stripe,  # noqa: F401
)


def test_payout_paid_is_recorded(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings)
    pay_checkout(api, stripe, invoice["id"])
    stripe.payout("usd")
    stripe.wait_for_deliveries()
    (row,) = [r for r in inbox(db) if r.type == "payout.paid"]
    assert (row.status, row.last_error) == ("processed", None)
    assert len(stripe.requests_to("/v1/balance_transactions", method="GET")) == 1
