"""Autopay retries on the delinquency plan's timeline, and never for a policy that is
cancelled or lapsed (polar#13077: no charge after the customer cancelled)."""

from __future__ import annotations

from datetime import timedelta

from premium_billing.jobs.runner import run_job
from tests.integration.settlement_helpers import cancel
from tests.integration.test_autopay import CHARGES, _attempts, _save_card

from .stripe_helpers import (
    EFFECTIVE,
    fake,  # noqa: F401
    open_invoices,
    settings,  # noqa: F401
    stripe,  # noqa: F401
)


def test_a_cancelled_policy_gets_no_retry(api, db, settings, stripe):  # noqa: F811
    (invoice,) = open_invoices(api, db, settings, autopay=True)
    _save_card(api, db, stripe, invoice, "4000000000000341")  # every charge declined
    assert run_job(db, settings, "autopay", EFFECTIVE).stats["charged"] == 1
    response = cancel(api, invoice["policy_id"], (EFFECTIVE + timedelta(days=1)).isoformat())
    assert response.status_code == 201, response.text
    # What the cancellation left to pay (the earned premium) is still open: never charged.
    assert api.get(f"/invoices/{invoice['id']}").json()["amount_due"] > 0
    charged = [
        run_job(db, settings, "autopay", EFFECTIVE + timedelta(days=d)).stats["charged"]
        for d in range(1, 10)
    ]
    assert charged == [0] * 9
    assert len(stripe.requests_to(CHARGES)) == 1
    assert _attempts(db) == [(0, "failed", "generic_decline")]
