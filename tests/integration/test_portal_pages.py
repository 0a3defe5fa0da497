"""The portal's pages over real HTTP: what the policyholder sees, the link the back office
makes, 404 for a token that is not good (nothing leaked), CSRF, the rate limit, autopay."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta

from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select

from premium_billing.invoicing.rules import format_reference, payment_reference
from premium_billing.jobs.runner import run_job
from premium_billing.policies.models import Policy
from premium_billing.portal_links import SALT
from premium_billing.stripe_billing.models import StripeCustomer

from ..factories import create_policy, create_policyholder, pet_line
from .portal_helpers import (
    Browser,
    holder_with_invoices,
    live_server,  # noqa: F401
    portal_link,
    processing,  # noqa: F401
    public_port,  # noqa: F401
    settings,  # noqa: F401
)
from .stripe_helpers import fake, stripe  # noqa: F401


def _expired_token(settings, holder_number: int) -> str:  # noqa: F811
    class Past(TimestampSigner):
        def get_timestamp(self) -> int:
            moment = datetime.now(UTC) - timedelta(days=settings.portal_token_days, hours=1)
            return int(moment.timestamp())

    serializer = URLSafeTimedSerializer(settings.secret_key, salt=SALT, signer=Past)
    return serializer.dumps({"ph": holder_number})


def pdf_text(body: bytes) -> str:
    """The text of a PDF's page streams (fpdf2 compresses them with zlib)."""
    out = []
    for chunk in body.split(b"stream")[1:]:
        data = chunk.split(b"endstream")[0].strip(b"\r\n")
        try:
            out.append(zlib.decompress(data).decode("latin-1"))
        except zlib.error:
            out.append(data.decode("latin-1"))
    return "\n".join(out)


def test_the_page_shows_policies_pets_invoices_and_what_is_overdue(api, db, settings):  # noqa: F811
    holder, invoices = holder_with_invoices(api, db, settings, name="Zoë Müller")
    url = portal_link(api, holder["id"])
    page = Browser().get(url)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    text = page.text
    assert settings.insurer_name in text and "Zoë Müller" in text
    assert "Rex" in text and "Mia" in text and "Labrador" in text
    for invoice in invoices:
        assert f'data-number="{invoice["number"]}"' in text
        assert format_reference(payment_reference(invoice["number"])) in text
        assert invoice["due_date"] in text
    total = sum(i["amount_due"] for i in invoices)
    assert f"{total // 100:,}.{total % 100:02d} USD" in text  # due, and all of it overdue
    assert text.count('data-testid="pay-inv') == 0 and text.count("Pay now") == len(invoices)
    assert 'data-testid="pay-overdue-USD"' in text
    assert text.count('data-testid="policy-status">active') == 2
    # What happens next, as collections sees it (GET /policies/{id}/delinquency).
    delinquency = api.get(f"/policies/{invoices[0]['policy_id']}/delinquency").json()
    assert delinquency["lapse_on"] is not None
    assert text.count('data-testid="next-step"') == 2
    assert text.count("unpaid, the cover lapses") == 2
    # Our own style sheet, no script, forms post only to us and on to Stripe's Checkout.
    csp = page.headers["Content-Security-Policy"]
    assert "script-src" not in csp and "style-src 'self'" in csp
    assert f"form-action 'self' {settings.stripe_api_base}" in csp
    css = Browser().get(settings.public_base_url + "/portal/assets/portal.css")
    assert css.status_code == 200 and "@media (max-width: 640px)" in css.text
    assert page.headers["Cache-Control"] == "no-store"


def test_the_portal_link_endpoint(api, db, settings, make_key):  # noqa: F811
    holder, _ = holder_with_invoices(api, db, settings, policies=1)
    response = api.as_key(make_key("billing")).post(f"/policyholders/{holder['id']}/portal-link")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["url"].startswith(settings.public_base_url + "/portal/")
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert Browser().get(body["url"]).status_code == 200
    forbidden = api.as_key(make_key("finance")).post(f"/policyholders/{holder['id']}/portal-link")
    assert forbidden.status_code == 403
    assert api.as_key(None).post(f"/policyholders/{holder['id']}/portal-link").status_code == 401
    assert api.post("/policyholders/ph_999999/portal-link").status_code == 404
    assert api.post("/policyholders/nonsense/portal-link").status_code == 404


def test_a_token_that_is_not_good_is_a_plain_404(api, db, settings):  # noqa: F811
    holder, invoices = holder_with_invoices(api, db, settings, policies=1)
    other, other_invoices = holder_with_invoices(api, db, settings, name="Bo Other", policies=1)
    url = portal_link(api, holder["id"])
    token = url.rsplit("/", 1)[1]
    base = settings.public_base_url + "/portal/"
    payload, stamp, signature = token.split(".")
    other_id = int(other["id"].removeprefix("ph_"))
    forged_payload = URLSafeTimedSerializer("guess", salt=SALT).dumps({"ph": other_id})
    bad = {
        "altered signature": base + f"{payload}.{stamp}.{signature[:-2]}xx",
        "payload of another holder": base + f"{forged_payload.split('.')[0]}.{stamp}.{signature}",
        "signed with another key": base + forged_payload,
        "expired": base + _expired_token(settings, int(holder["id"].removeprefix("ph_"))),
        "garbage": base + "not-a-token",
        "no such holder": base
        + URLSafeTimedSerializer(settings.secret_key, salt=SALT).dumps({"ph": 987654}),
    }
    answers = {}
    for why, link in bad.items():
        for suffix in ("", "/statement", "/statement.pdf"):
            response = Browser().get(link + suffix)
            assert response.status_code == 404, (why, suffix)
            answers[(why, suffix)] = response.text
    assert len(set(answers.values())) == 1  # the same page whatever the reason
    page = next(iter(answers.values()))
    assert "Ann Lee" not in page and "Bo Other" not in page and "INV-" not in page
    # Another holder's invoice through a good token: the same 404, nothing charged.
    browser = Browser()
    response = browser.post_form(f"{url}/invoices/{other_invoices[0]['id']}/pay", {}, page=url)
    assert response.status_code == 404 and response.text == page
    # Another holder's Checkout on the return page: the same 404.
    other_url = portal_link(api, other["id"])
    Browser().post_form(f"{other_url}/invoices/{other_invoices[0]['id']}/pay", {}, other_url)
    with db.session() as session:
        from premium_billing.portal.models import PortalCheckout

        (row,) = session.scalars(select(PortalCheckout))
    done = Browser().get(f"{url}/checkout/done?session_id={row.session_id}")
    assert done.status_code == 404 and done.text == page
    assert invoices  # the holder's own invoices were there to pay


def test_forms_without_the_csrf_token_are_refused(api, db, settings, stripe):  # noqa: F811
    holder, invoices = holder_with_invoices(api, db, settings, policies=1)
    url = portal_link(api, holder["id"])
    browser = Browser()
    browser.get(url)  # has the session cookie, not the form's token
    for path, data in (
        (f"/invoices/{invoices[0]['id']}/pay", {}),
        ("/pay-overdue", {"currency": "USD"}),
        ("/autopay", {"autopay": "off"}),
    ):
        for token in (None, "forged"):
            form = dict(data, **({"csrf_token": token} if token else {}))
            response = browser.http.post(url + path, data=form, allow_redirects=False, timeout=30)
            assert response.status_code == 400, (path, token)
            assert "form had expired" in response.text
    # A token from another browser's session is refused too.
    theirs = Browser().csrf(url)
    response = browser.http.post(
        url + "/pay-overdue", data={"currency": "USD", "csrf_token": theirs},
        allow_redirects=False, timeout=30,
    )  # fmt: skip
    assert response.status_code == 400
    assert stripe.objects("checkout.session") == []
    cookie = next(c for c in browser.http.cookies if c.name == "session")
    assert cookie.has_nonstandard_attr("HttpOnly")


def test_pay_now_starts_a_checkout_for_that_invoice(api, db, settings, stripe):  # noqa: F811
    holder, invoices = holder_with_invoices(api, db, settings, policies=1)
    url = portal_link(api, holder["id"])
    browser = Browser()
    first = invoices[0]
    response = browser.post_form(f"{url}/invoices/{first['id']}/pay", {}, page=url)
    assert response.status_code == 303
    (created,) = stripe.objects("checkout.session")
    assert response.headers["Location"] == created["url"]
    assert created["metadata"]["invoice_id"] == first["id"]
    assert created["success_url"].startswith(url + "/checkout/done?session_id=")
    # Before it is paid the return page polls; once paid it says so.
    waiting = browser.get(f"{url}/checkout/done?session_id={created['id']}")
    assert 'data-done="no"' in waiting.text and 'http-equiv="refresh"' in waiting.text
    assert stripe.pay(created["id"]) == 303
    stripe.wait_for_deliveries()
    done = browser.get(f"{url}/checkout/done?session_id={created['id']}")
    assert 'data-done="yes"' in done.text and first["number"] in done.text
    assert api.get(f"/invoices/{first['id']}").json()["status"] == "paid"
    cancelled = browser.get(f"{url}/checkout/cancelled")
    assert cancelled.status_code == 200 and "Nothing was charged" in cancelled.text


def test_autopay_on_saves_a_card_and_off_stops_it(api, db, settings, stripe):  # noqa: F811
    holder, _ = holder_with_invoices(api, db, settings, policies=2)
    url = portal_link(api, holder["id"])
    browser = Browser()
    assert 'data-testid="autopay-state">off' in browser.get(url).text
    response = browser.post_form(url + "/autopay", {"autopay": "on"}, page=url)
    assert response.status_code == 303
    (created,) = stripe.objects("checkout.session")
    assert created["mode"] == "setup"
    assert 'data-testid="autopay-state">waiting for a card' in browser.get(url).text
    assert stripe.pay(created["id"]) == 303
    stripe.wait_for_deliveries()
    with db.session() as session:
        assert session.scalar(select(StripeCustomer.payment_method_id)) is not None
        assert set(session.scalars(select(Policy.autopay))) == {True}
    done = browser.get(f"{url}/checkout/done?session_id={created['id']}")
    assert "Autopay is on" in done.text
    assert 'data-testid="autopay-state">on' in browser.get(url).text
    off = browser.post_form(url + "/autopay", {"autopay": "off"}, page=url)
    assert off.status_code == 303 and off.headers["Location"].endswith("#autopay")
    with db.session() as session:
        assert set(session.scalars(select(Policy.autopay))) == {False}
    assert 'data-testid="autopay-state">off' in browser.get(url).text


def test_the_statement_page_and_its_pdf(api, db, settings):  # noqa: F811
    holder, invoices = holder_with_invoices(api, db, settings, name="Ann Lee")
    url = portal_link(api, holder["id"])
    page = Browser().get(url + "/statement")
    assert page.status_code == 200 and "Statement of account" in page.text
    for invoice in invoices:
        assert invoice["number"] in page.text
    total = sum(i["total"] for i in invoices)
    closing = f"{total // 100:,}.{total % 100:02d}"
    assert closing in page.text
    pdf = Browser().get(url + "/statement.pdf")
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.headers["Content-Disposition"].startswith('attachment; filename="statement-')
    assert pdf.content.startswith(b"%PDF-")
    text = pdf_text(pdf.content)
    assert "Ann Lee" in text and settings.insurer_name in text
    for invoice in invoices:
        assert invoice["number"] in text
    assert closing in text


def test_the_portal_is_rate_limited_per_client_address(database_url, fake):  # noqa: F811
    from premium_billing import create_app
    from tests.conftest import LiveServer

    from .stripe_helpers import stripe_settings

    app = create_app(stripe_settings(database_url, fake, portal_rate_limit="5/minute"))
    try:
        with LiveServer(app) as server:
            link = server.base_url + "/portal/not-a-token"
            css = server.base_url + "/portal/assets/portal.css"
            assert {Browser().get(css).status_code for _ in range(8)} == {200}  # not counted
            codes = [Browser().get(link).status_code for _ in range(7)]
            assert codes == [404] * 5 + [429] * 2
            assert "Too many requests" in Browser().get(link).text
            # The API is not limited by the portal's limit.
            assert Browser().get(server.base_url + "/healthz").status_code == 200
    finally:
        app.extensions["premium_billing.db"].dispose()


def test_the_next_step_and_the_lapse_day_are_shown_before_they_come(api, db, settings):  # noqa: F811
    """A policy whose invoice fell due yesterday: the next collections step (a reminder 3
    days after the due date) and the day its cover lapses unpaid, both ahead."""
    from datetime import date as _date

    from premium_billing.clock import business_date

    today = business_date(settings.timezone)
    holder = create_policyholder(api, name="Next Step", email="next@example.com")
    policy = create_policy(
        api, holder["id"], policy_number=f"NEXT-{today.isoformat()}",
        effective_date=(today - timedelta(days=1)).isoformat(), billing_plan="monthly",
        lines=[pet_line("Rex", 48000)],
    )  # fmt: skip
    run_job(db, settings, "issue_invoices", today)
    found = api.get(f"/policies/{policy['id']}/delinquency").json()
    lapse_on = _date.fromisoformat(found["lapse_on"])
    assert lapse_on > today
    text = Browser().get(portal_link(api, holder["id"])).text
    reminder = (today - timedelta(days=1) + timedelta(days=3)).isoformat()
    assert f"Next: a payment reminder on {reminder}" in text
    assert f"unpaid, the cover lapses on {lapse_on.isoformat()}" in text
