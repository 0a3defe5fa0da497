"""Pay everything overdue: one Checkout for the sum of a policyholder's overdue invoices,
paid on the fake Stripe, its signed webhooks posted by the one engine to each invoice."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from premium_billing.payments.models import Allocation
from premium_billing.portal.models import PortalCheckout

from .portal_helpers import (
    Browser,
    holder_with_invoices,
    live_server,  # noqa: F401
    portal_link,
    processing,  # noqa: F401
    public_port,  # noqa: F401
    settings,  # noqa: F401
    wait_until,
)
from .stripe_helpers import (
    fake,  # noqa: F401
    ledger_problems,
    stripe,  # noqa: F401
    stripe_payments,
)


def _checkout_of(db, session_id: str) -> PortalCheckout:
    with db.session() as session:
        row = session.scalar(select(PortalCheckout).where(PortalCheckout.session_id == session_id))
        assert row is not None
        return row


def _pay_overdue(api, db, stripe, url: str) -> str:  # noqa: F811
    browser = Browser()
    response = browser.post_form(url + "/pay-overdue", {"currency": "USD"}, page=url)
    assert response.status_code == 303, response.text
    assert response.headers["Location"].startswith(stripe.base_url + "/checkout/")
    session_id = stripe.objects("checkout.session")[-1]["id"]
    assert stripe.pay(session_id) == 303
    stripe.wait_for_deliveries()
    return session_id


@pytest.mark.parametrize("processing", ["inline", "deferred"])
def test_pay_everything_overdue_pays_each_invoice_its_amount(api, db, settings, stripe):  # noqa: F811
    holder, invoices = holder_with_invoices(api, db, settings)
    assert len(invoices) == 4 and len({i["policy_id"] for i in invoices}) == 2
    url = portal_link(api, holder["id"])
    session_id = _pay_overdue(api, db, stripe, url)
    last = invoices[-1]["id"]
    assert wait_until(lambda: api.get(f"/invoices/{last}").json()["status"] == "paid")

    created = stripe.objects("checkout.session")[-1]
    due = sum(i["amount_due"] for i in invoices)
    assert created["amount_total"] == due
    assert created["metadata"]["invoice_ids"] == ",".join(i["id"] for i in invoices)
    assert "invoice_id" not in created["metadata"] and not created.get("client_reference_id")
    assert sorted(_checkout_of(db, session_id).invoice_ids) == sorted(
        int(i["id"].removeprefix("inv_")) for i in invoices
    )
    for invoice in invoices:
        now = api.get(f"/invoices/{invoice['id']}").json()
        assert (now["status"], now["amount_due"], now["amount_paid"]) == (
            "paid", 0, invoice["total"],
        )  # fmt: skip
    (payment,) = stripe_payments(db)
    assert (payment.amount, payment.status, payment.amount_unapplied) == (due, "applied", 0)
    assert payment.match_rule == "stripe_metadata"
    with db.session() as session:
        allocated = dict(
            session.execute(
                select(Allocation.invoice_id, Allocation.amount).where(
                    Allocation.payment_id == payment.id
                )
            ).all()
        )
    assert allocated == {int(i["id"].removeprefix("inv_")): i["amount_due"] for i in invoices}
    assert ledger_problems(db) == []
    # The return page shows the result: every invoice paid.
    done = Browser().get(f"{url}/checkout/done?session_id={session_id}")
    assert done.status_code == 200
    assert 'data-done="yes"' in done.text and 'http-equiv="refresh"' not in done.text
    assert done.text.count('data-status="paid"') == 4
    # Nothing overdue any more: a second Pay everything overdue is refused, nothing charged.
    again = Browser().post_form(url + "/pay-overdue", {"currency": "USD"}, page=url)
    assert again.status_code == 409
    assert len(stripe.objects("checkout.session")) == 1


def test_an_invoice_paid_meanwhile_leaves_the_payment_in_suspense(api, db, settings, stripe):  # noqa: F811
    holder, invoices = holder_with_invoices(api, db, settings, policies=1)
    url = portal_link(api, holder["id"])
    browser = Browser()
    response = browser.post_form(url + "/pay-overdue", {"currency": "USD"}, page=url)
    assert response.status_code == 303
    session_id = stripe.objects("checkout.session")[-1]["id"]
    # Before the policyholder pays, the oldest invoice is paid by a check keyed by hand.
    first = invoices[0]
    check = api.post(
        "/payments",
        json={"amount": first["amount_due"], "currency": "USD", "method": "check",
              "received_on": "2026-04-02", "reference": first["number"]},
    )  # fmt: skip
    assert check.status_code == 201, check.text
    allocated = api.post(
        f"/payments/{check.json()['id']}/allocations",
        json={"allocations": [{"invoice_id": first["id"], "amount": first["amount_due"]}]},
    )
    assert allocated.status_code in (200, 201), allocated.text
    assert stripe.pay(session_id) == 303
    stripe.wait_for_deliveries()
    (payment,) = stripe_payments(db)
    # The sum no longer matches what the invoices have due: nothing applied, it waits.
    assert payment.amount == sum(i["amount_due"] for i in invoices)
    assert (payment.status, payment.amount_unapplied) == ("unapplied", payment.amount)
    assert payment.match_evidence["unmatched"] == "an invoice named is paid, nothing due"
    second = api.get(f"/invoices/{invoices[1]['id']}").json()
    assert second["amount_due"] == invoices[1]["amount_due"]
    assert ledger_problems(db) == []
