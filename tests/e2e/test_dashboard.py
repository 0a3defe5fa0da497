"""The finance dashboard in a real browser (issue 15): a finance user logs in, reads the home
page and its charts, matches a suspense payment and undoes it, exports a CSV, marks a refund
paid; a form posted without or with a wrong CSRF token is refused; the auditor has no button
and her POST is refused; logins are throttled. Screenshots of every page, at desktop and
phone widths, are kept in var/test-artifacts/dashboard/."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from premium_billing.clock import business_date
from premium_billing.config import PROJECT_ROOT
from premium_billing.dashboard.rules import AGING_LABELS
from premium_billing.reports.rules import bucket_of
from tests.e2e.navigation import follow
from tests.integration.collections_helpers import monthly_policy, run_days
from tests.integration.dashboard_helpers import PASSWORD, make_user, small_book

ARTIFACTS = PROJECT_ROOT / "var" / "test-artifacts" / "dashboard"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
PAGES = {
    "home": "/dashboard/",
    "suspense": "/dashboard/suspense",
    "reconciliation": "/dashboard/reconciliation",
    "refunds": "/dashboard/refunds",
    "trial-balance": "/dashboard/trial-balance",
    "aging": "/dashboard/aging",
    "collections": "/dashboard/collections",
    "notifications": "/dashboard/notifications",
    "deliveries": "/dashboard/deliveries",
}


def log_in(page: Any, base_url: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/dashboard/")
    assert "/dashboard/login" in page.url
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    follow(page, page.get_by_role("button", name="Log in"))  # a page or its redirect


def shoot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def on_console(message: Any, problems: list[str]) -> None:
    # Chromium asks for /favicon.ico on its own: a 404, not a violation.
    if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
        problems.append(message.text)


def flash(page: Any) -> str:
    return str(page.get_by_test_id("flash-ok").inner_text())


def expected_aging(api: Any, today: date) -> dict[str, int]:
    """The amounts due of open invoices by bucket, from the API's invoices."""
    buckets: dict[str, int] = {}
    for invoice in api.get("/invoices", params={"limit": 500}).json()["data"]:
        if invoice["status"] in ("open", "partially_paid") and invoice["amount_due"] > 0:
            bucket = bucket_of((today - date.fromisoformat(invoice["due_date"])).days)
            buckets[bucket] = buckets.get(bucket, 0) + invoice["amount_due"]
    return buckets


def test_finance_user_reads_charts_matches_undoes_exports_and_marks_paid(
    api, db, live_server, browser, settings, backend
):
    book = small_book(api, db)
    make_user(db, "finance", "fay")
    base = live_server.base_url
    today = business_date(settings.timezone)
    context = browser.new_context(viewport=SIZES["desktop"], accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []  # console errors: a CSP violation, a blocked resource
    requested: set[str] = set()
    page.on("console", lambda m: on_console(m, problems))
    page.on("request", lambda r: requested.add(urlsplit(r.url).netloc))
    page.goto(f"{base}/dashboard/login")
    shoot(page, f"{backend}-login-desktop")
    log_in(page, base, "fay")
    assert page.url == f"{base}/dashboard/"
    assert page.get_by_test_id("who").inner_text() == "fay (finance)"

    # Aging: the table and the chart's bars say what the open invoices owe, by bucket.
    aging = expected_aging(api, today)
    assert aging  # the book's invoices are due
    chart = page.get_by_test_id("chart-aging-USD")
    bars = {
        r.get_attribute("data-label"): int(r.get_attribute("data-value"))
        for r in chart.locator("rect").all()
    }
    assert bars == {label: aging.get(b, 0) for b, label in AGING_LABELS.items()}
    assert chart.locator("svg").get_attribute("role") == "img"
    # Billed vs collected: two bars (billed, collected) for each of the 12 months.
    flows = page.get_by_test_id("chart-flows-USD").locator("rect")
    assert flows.count() == 24
    # The funnel: as many active policies as the API lists.
    active = len(api.get("/policies", params={"status": "active"}).json()["data"])
    funnel = page.get_by_test_id("chart-funnel").locator("rect").first
    assert (funnel.get_attribute("data-label"), funnel.get_attribute("data-value")) == (
        "active", str(active),
    )  # fmt: skip
    # The auto-match rate of the one run: nothing auto-matched of 1 examined.
    rates = page.get_by_test_id("chart-rates").locator("rect")
    assert rates.count() == 1 and rates.first.get_attribute("data-value") == "0"

    # The suspense queue as a CSV download.
    follow(page, page.get_by_role("link", name="Suspense"))
    with page.expect_download() as download:
        page.get_by_test_id("suspense-csv").click()
    saved = download.value.path()
    rows = list(csv.DictReader(io.StringIO(Path(saved).read_text())))
    assert [(r["payment_id"], r["amount"], r["held"], r["best_invoice"]) for r in rows] == [
        (book.suspense_payment, "72.50", "no", book.ann_number)
    ]
    assert rows[0]["best_suggested_amount"] == "72.50" and rows[0]["candidates"] == "2"
    assert download.value.suggested_filename == f"suspense-{today.isoformat()}.csv"

    shoot(page, f"{backend}-suspense-candidates-desktop")
    # Match the suspense payment to its first candidate, in one click; then undo it.
    candidate = page.get_by_test_id(f"candidate-{book.ann_invoice}")
    follow(page, candidate.get_by_role("button", name="Match 72.50"))
    assert flash(page) == f"Matched {book.suspense_payment}: 72.50 USD to {book.ann_invoice}."
    assert api.get(f"/invoices/{book.ann_invoice}").json()["status"] == "paid"
    assert page.get_by_test_id(f"suspense-{book.suspense_payment}").count() == 0
    undo = page.get_by_test_id(f"match-{book.suspense_payment}").get_by_role("button", name="Undo")
    follow(page, undo)
    assert flash(page) == f"Undone: {book.suspense_payment} is unapplied again."
    assert api.get(f"/invoices/{book.ann_invoice}").json()["status"] == "open"
    held = page.get_by_test_id(f"suspense-{book.suspense_payment}")
    assert "held" in held.inner_text()  # back in the queue, held for a person

    # Mark the check refund paid.
    follow(page, page.get_by_role("link", name="Refunds"))
    row = page.get_by_test_id(f"refund-{book.refund}")
    row.get_by_label("Reference").fill("CHK 1001")
    follow(page, row.get_by_role("button", name="Mark paid"))
    assert flash(page) == f"Marked {book.refund} paid by check on {today.isoformat()}."
    refund = api.get(f"/refunds/{book.refund}").json()
    assert (refund["status"], refund["reference"]) == ("succeeded", "CHK 1001")
    assert page.get_by_test_id("refunds-empty").is_visible()

    # Every page at both widths.
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        for name, path in PAGES.items():
            response = page.goto(base + path)
            assert response is not None and response.status == 200, path
            font = page.evaluate("getComputedStyle(document.body).fontFamily")
            assert "system-ui" in font, (path, font)  # our style sheet applied under the CSP
            shoot(page, f"{backend}-{name}-{size}")
        # Nothing wider than the phone's screen but the tables' own scrolling boxes.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], (size, width)
    assert problems == []
    assert requested == {urlsplit(base).netloc}  # nothing from anywhere else
    context.close()


def test_finance_user_reads_kpis_and_the_worklist(api, db, live_server, browser, settings,
                                                  backend):  # fmt: skip
    small = monthly_policy(api, "COL-1", premium=60000)
    big = monthly_policy(api, "COL-2", premium=240000)
    run_days(db, settings, "2025-12-18", "2026-01-20")
    make_user(db, "finance", "fay")
    base = live_server.base_url
    context = browser.new_context(viewport=SIZES["desktop"], accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: on_console(m, problems))
    log_in(page, base, "fay")

    # The KPIs of a chosen period, through the page's own GET form.
    page.get_by_label("Months from").fill("2026-01-01")
    page.get_by_label("to", exact=True).fill("2026-01-31")
    page.get_by_label("Currency").fill("USD")
    follow(page, page.get_by_role("button", name="Show"))
    assert "from=2026-01-01" in page.url and "currency=USD" in page.url
    (want,) = api.get("/reports/kpis", params={"from": "2026-01-01", "to": "2026-01-31",
                                               "currency": "USD"}).json()["currencies"]  # fmt: skip
    assert want["billed"] > 0 and want["collected"] == 0
    for key in ("billed", "collected", "closing_receivables", "failed_payments"):
        cell = page.get_by_test_id(f"kpi-{key}").locator("td").first
        assert int(cell.get_attribute("data-value")) == want[key], key
    rate = page.get_by_test_id("kpi-collection_rate").locator("td").first
    assert rate.inner_text() == "0.0%"
    shoot(page, f"{backend}-home-kpis-desktop")

    # The worklist, riskiest first, from the menu; and its CSV.
    follow(page, page.get_by_role("link", name="Collections"))
    page.get_by_label("As of").fill("2026-01-20")
    follow(page, page.get_by_role("button", name="Show"))
    rows = page.get_by_test_id("worklist").locator("tbody tr")
    assert [r.get_attribute("data-testid") for r in rows.all()] == [
        f"worklist-{big['id']}",
        f"worklist-{small['id']}",
    ]
    assert "in grace" in rows.first.inner_text()
    with page.expect_download() as download:
        page.get_by_test_id("worklist-csv").click()
    listed = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert [r["policy_id"] for r in listed] == [big["id"], small["id"]]
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        shoot(page, f"{backend}-worklist-{size}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], (size, width)
    assert problems == []
    context.close()


def test_csrf_refused_and_the_auditor_changes_nothing(api, db, live_server, browser):
    book = small_book(api, db)
    make_user(db, "finance", "fay")
    make_user(db, "auditor", "ada")
    base = live_server.base_url
    action = f"{base}/dashboard/refunds/{book.refund}/mark-paid"

    finance = browser.new_context(viewport=SIZES["desktop"])
    page = finance.new_page()
    log_in(page, base, "fay")
    assert page.get_by_test_id("who").inner_text() == "fay (finance)"
    page.goto(f"{base}/dashboard/refunds")
    # A form posted from elsewhere: the session's cookie goes along, but no token, or a forged one.
    for form in ({"method": "check"}, {"method": "check", "csrf_token": "forged"}):
        response = page.request.post(action, form=form, max_redirects=0)
        assert response.status == 400, form
        assert "CSRF" in response.text()
    assert api.get(f"/refunds/{book.refund}").json()["status"] == "pending"
    finance.close()

    auditor = browser.new_context(viewport=SIZES["desktop"])
    page = auditor.new_page()
    log_in(page, base, "ada")
    assert page.get_by_test_id("who").inner_text() == "ada (auditor)"
    page.goto(f"{base}/dashboard/suspense")
    assert page.get_by_test_id(f"suspense-{book.suspense_payment}").is_visible()
    assert page.get_by_role("button", name="Match").count() == 0
    page.goto(f"{base}/dashboard/refunds")
    assert page.get_by_test_id(f"refund-{book.refund}").is_visible()
    assert page.get_by_role("button", name="Mark paid").count() == 0
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = page.request.post(
        action, form={"method": "check", "csrf_token": token}, max_redirects=0
    )
    assert refused.status == 403 and "Your role may not do this." in refused.text()
    matched = page.request.post(
        f"{base}/dashboard/payments/{book.suspense_payment}/match",
        form={"invoice_id": book.ann_invoice, "amount": "7250", "csrf_token": token},
        max_redirects=0,
    )
    assert matched.status == 403
    assert api.get(f"/refunds/{book.refund}").json()["status"] == "pending"
    assert api.get(f"/invoices/{book.ann_invoice}").json()["status"] == "open"
    auditor.close()


def test_login_throttled_after_repeated_failures(db, live_server, browser, settings):
    make_user(db, "finance", "fay")
    base = live_server.base_url
    context = browser.new_context(viewport=SIZES["phone"])
    page = context.new_page()
    for _ in range(settings.login_max_failures):
        log_in(page, base, "fay", "a wrong password")
        assert page.get_by_test_id("login-error").inner_text() == "Wrong name or password."
    log_in(page, base, "fay")  # the right password, too late
    assert page.get_by_test_id("login-error").inner_text() == (
        f"Too many failed logins: try again in {settings.login_lock_minutes} minutes."
    )
    assert "/dashboard/login" in page.url
    shoot(page, "login-throttled-phone")
    context.close()
