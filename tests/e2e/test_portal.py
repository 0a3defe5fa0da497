"""The policyholder portal in a real browser (Playwright, the system Chromium), paying
through the fake Stripe's Checkout page over real HTTP with signed webhooks: open the portal
link, pay one invoice, then everything overdue, come back and see them paid, download the
statement as a PDF; an altered, expired or another holder's token is a 404.

Screenshots of each page, at desktop (1280x800) and phone (390x844) widths, are saved under
var/e2e/portal/<backend>/ (PORTAL_SCREENSHOTS overrides the directory)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import URLSafeTimedSerializer

from premium_billing.config import PROJECT_ROOT
from premium_billing.portal_links import SALT
from tests.e2e.navigation import follow
from tests.integration.portal_helpers import (
    holder_with_invoices,
    live_server,  # noqa: F401
    portal_link,
    processing,  # noqa: F401
    public_port,  # noqa: F401
    settings,  # noqa: F401
)
from tests.integration.stripe_helpers import fake, ledger_problems, stripe  # noqa: F401
from tests.integration.test_portal_pages import _expired_token, pdf_text

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def shots(backend: str) -> Path:
    root = Path(os.environ.get("PORTAL_SCREENSHOTS") or PROJECT_ROOT / "var" / "e2e" / "portal")
    path = root / backend
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.png"):
        old.unlink()
    return path


def snap(page: Any, shots: Path, name: str) -> None:
    """The page at desktop and phone width (full page), back at desktop width after."""
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        path = shots / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.set_viewport_size(DESKTOP)


def no_horizontal_scroll(page: Any) -> None:
    """At phone width the page fits: nothing wider than the screen but the statement."""
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size(DESKTOP)
    assert width <= PHONE["width"], width


def pay_on_checkout(page: Any, amount: int) -> None:
    """On the fake Stripe's Checkout page: check the amount, Pay, wait to be back with us."""
    assert page.locator("#amount").get_attribute("data-amount") == str(amount)
    page.get_by_role("button", name="Pay").click()
    page.wait_for_selector('[data-testid="result"][data-done="yes"]', timeout=20_000)


def test_a_policyholder_pays_in_the_portal(api, db, settings, stripe, browser, shots, backend):  # noqa: F811
    holder, invoices = holder_with_invoices(api, db, settings, name="Ann Lee")
    url = portal_link(api, holder["id"])
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    console_errors: list[str] = []
    page.on(
        "console",
        lambda m: (
            console_errors.append(f"{m.text} {m.location.get('url')}")
            if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico")
            else None
        ),
    )

    # The portal link: who, what is owed and overdue, the policies and pets.
    response = page.goto(url)
    assert response is not None and response.status == 200
    assert page.get_by_test_id("insurer").inner_text() == settings.insurer_name
    assert page.get_by_test_id("holder").inner_text() == "Ann Lee"
    assert page.get_by_test_id("open-invoice").count() == 4
    assert page.get_by_test_id("pet").count() == 2
    total = sum(i["amount_due"] for i in invoices)
    assert page.get_by_test_id("overdue").inner_text() == f"{total / 100:,.2f} USD"
    no_horizontal_scroll(page)
    snap(page, shots, "01-portal")

    # Pay now: the first invoice, through the fake Checkout, back on our result page.
    first = invoices[0]
    page.get_by_test_id(f"pay-{first['number']}").click()
    page.wait_for_url(stripe.base_url + "/checkout/**")
    snap(page, shots, "02-checkout-one")
    pay_on_checkout(page, first["amount_due"])
    assert page.url.startswith(url + "/checkout/done")
    assert page.title() == "Thank you: paid"
    snap(page, shots, "03-paid-one")
    assert api.get(f"/invoices/{first['id']}").json()["status"] == "paid"

    # Back: three to pay; Pay everything overdue pays them in one Checkout.
    follow(page, page.get_by_test_id("back"))
    assert page.get_by_test_id("open-invoice").count() == 3
    assert page.get_by_test_id("paid-invoice").count() == 1
    rest = total - first["amount_due"]
    assert page.get_by_test_id("overdue").inner_text() == f"{rest / 100:,.2f} USD"
    snap(page, shots, "04-portal-after-one")
    page.get_by_test_id("pay-overdue-USD").click()
    page.wait_for_url(stripe.base_url + "/checkout/**")
    assert "3 overdue invoices" in page.locator("#description").inner_text()
    snap(page, shots, "05-checkout-overdue")
    pay_on_checkout(page, rest)
    assert page.get_by_test_id("result-invoice").count() == 3
    assert {
        r.get_attribute("data-status") for r in page.get_by_test_id("result-invoice").all()
    } == {"paid"}
    snap(page, shots, "06-paid-overdue")

    # Back: nothing to pay, nothing overdue, two payments in the history.
    follow(page, page.get_by_test_id("back"))
    assert page.get_by_test_id("nothing-to-pay").is_visible()
    assert page.get_by_test_id("overdue").inner_text() == "None"
    assert page.get_by_test_id("payment").count() == 2
    assert page.get_by_test_id("paid-invoice").count() == 4
    snap(page, shots, "07-portal-all-paid")
    for invoice in invoices:
        now = api.get(f"/invoices/{invoice['id']}").json()
        assert (now["status"], now["amount_due"]) == ("paid", 0)
    assert ledger_problems(db) == []

    # The statement of account: a printable page and a PDF naming the holder and amounts.
    follow(page, page.get_by_test_id("statement-page"))
    assert page.title() == "Statement of account — Ann Lee"
    assert page.get_by_test_id("closing-USD").inner_text() == "0.00"
    no_horizontal_scroll(page)
    snap(page, shots, "08-statement")
    with page.expect_download() as download_info:
        page.get_by_test_id("download-pdf").click()
    download = download_info.value
    assert download.suggested_filename.startswith("statement-")
    pdf_path = shots / "statement.pdf"
    download.save_as(str(pdf_path))
    body = pdf_path.read_bytes()
    assert body.startswith(b"%PDF-")
    text = pdf_text(body)
    assert "Ann Lee" in text and settings.insurer_name in text
    for invoice in invoices:
        assert invoice["number"] in text
        assert f"{invoice['total'] / 100:,.2f}" in text
    assert f"-{first['amount_due'] / 100:,.2f}" in text and f"-{rest / 100:,.2f}" in text

    assert console_errors == []  # no CSP violation, nothing blocked
    # A token altered, expired, naming another holder, or another holder's Checkout: 404.
    other, _ = holder_with_invoices(api, db, settings, name="Bo Other", policies=1)
    token = url.rsplit("/", 1)[1]
    payload, stamp, signature = token.split(".")
    other_id = int(other["id"].removeprefix("ph_"))
    forged = URLSafeTimedSerializer("not-our-key", salt=SALT).dumps({"ph": other_id})
    base = settings.public_base_url + "/portal/"
    holder_id = int(holder["id"].removeprefix("ph_"))
    refused = {
        "tampered": f"{base}{payload}.{stamp}.{signature[::-1]}",
        "expired": base + _expired_token(settings, holder_id),
        "another-holder": f"{base}{forged.split('.')[0]}.{stamp}.{signature}",
    }
    for name, link in refused.items():
        response = page.goto(link)
        assert response is not None and response.status == 404, name
        assert page.title() == "Page not found"
        assert "Ann Lee" not in page.content() and "Bo Other" not in page.content()
        snap(page, shots, f"09-not-found-{name}")
    # A form posted without its CSRF token is refused.
    refused_post = page.request.post(url + "/pay-overdue", form={"currency": "USD"})
    assert refused_post.status == 400
    context.close()
    print(f"\nportal screenshots: {shots}")
