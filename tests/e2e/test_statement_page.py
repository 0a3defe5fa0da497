"""The printable statement of account, rendered by a real browser."""

from __future__ import annotations

from datetime import date

from premium_billing.jobs.runner import run_job
from tests.factories import create_policy, create_policyholder


def test_statement_page_renders_balances_and_prints(api, db, settings, browser, tmp_path):
    holder = create_policyholder(api, name="Ann Lee")["id"]
    policy = create_policy(
        api, holder, effective_date="2026-01-10", fees={"policy_fee": 0, "installment_fee": 0}
    )
    run_job(db, settings, "issue_invoices", date(2026, 2, 1))
    first = api.get("/invoices", params={"policy_id": policy["id"]}).json()["data"][0]
    payment = api.post(
        "/payments",
        json={"amount": 4000, "currency": "USD", "method": "ach", "received_on": "2026-02-03"},
    ).json()
    api.post(
        f"/payments/{payment['id']}/allocations",
        json={"allocations": [{"invoice_id": first["id"], "amount": 4000}]},
    )
    context = browser.new_context(
        extra_http_headers={"Authorization": f"Bearer {api.key}"},
        viewport={"width": 1000, "height": 700},
    )
    page = context.new_page()
    response = page.goto(
        f"{api.base_url}/policyholders/{holder}/statement?from=2026-01-01&to=2026-02-28&format=html"
    )
    assert response is not None and response.status == 200
    assert page.title() == "Statement of account — Ann Lee"
    assert page.get_by_test_id("opening-USD").inner_text() == "0.00"
    assert page.get_by_test_id("closing-USD").inner_text() == "40.00"
    rows = page.locator("tbody tr").all_inner_texts()
    assert len(rows) == 5  # opening, two invoices, the payment, closing
    assert "Payment received (ach)" in rows[3]
    screenshot = tmp_path / "statement.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page.emulate_media(media="print")
    pdf = page.pdf(format="A4")
    assert pdf[:5] == b"%PDF-" and len(pdf) > 5000
    context.close()
