"""The reconciler sees what a Stripe payment says: its metadata's invoice, its business date."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from .stripe_helpers import (  # noqa: F401
    fake,
    ledger_problems,
    open_invoices,
    stripe,
    stripe_payments,
    stripe_settings,
)


@pytest.fixture
def settings(database_url, fake):  # noqa: F811
    return stripe_settings(database_url, fake, billing_timezone="America/New_York")


def _succeeded(invoice: dict, amount: int, created: int) -> dict:
    pi = {
        "id": f"pi_recon_{time.monotonic_ns()}",
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount,
        "currency": "usd",
        "created": created,
        "status": "succeeded",
        "latest_charge": None,
        "metadata": {"invoice_id": invoice["id"], "invoice_number": invoice["number"]},
    }
    return {
        "id": f"evt_recon_{time.monotonic_ns()}",
        "object": "event",
        "created": created,
        "type": "payment_intent.succeeded",
        "data": {"object": pi},
        "livemode": False,
    }


def test_an_unmatched_stripe_payment_is_matched_by_its_metadata_in_a_run(
    api,
    db,
    settings,
    stripe,  # noqa: F811
):
    (invoice,) = open_invoices(api, db, settings)
    short = invoice["amount_due"] - 500  # another amount: not posted on arrival
    # 02:30 UTC on 10 March is still 9 March in New York, the business time zone.
    created = int(datetime(2026, 3, 10, 2, 30, tzinfo=UTC).timestamp())
    assert stripe.send_event(_succeeded(invoice, short, created)).status == 200
    (payment,) = stripe_payments(db)
    assert payment.status == "unapplied" and payment.match_evidence["unmatched"]
    assert payment.received_on.isoformat() == "2026-03-09"

    run = api.post("/reconciliation/runs", json={"as_of": "2026-03-10"})
    assert run.status_code == 201, run.text
    paid = api.get(f"/payments/pay_{payment.id}").json()
    assert paid["match"]["rule"] == "stripe_metadata", json.dumps(paid)
    assert paid["allocations"] == [{"invoice_id": invoice["id"], "amount": short}]
    after = api.get(f"/invoices/{invoice['id']}").json()
    assert (after["status"], after["amount_due"]) == ("partially_paid", 500)
    assert ledger_problems(db) == []
