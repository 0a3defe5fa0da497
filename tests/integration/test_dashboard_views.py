"""The dashboard's pages wired to the features (issue 15, item 2) over real HTTP on every
backend: the home page's KPIs are the KPIs API's, the aging page and its CSV the aging
report's, the collections worklist the worklist API's (riskiest first) and the funnel its
states, notifications and outbound deliveries as the API lists them; Redeliver is the
admin's (CSRF, the API's service), refused to finance."""

from __future__ import annotations

import csv
import io
import re
import time
from decimal import Decimal
from typing import Any

import pytest

from devtools.sinks import WebhookSink, until_idle
from premium_billing.outbound.sender import deliver_pass
from tests.factories import create_policy, create_policyholder, pet_line
from tests.integration.collections_helpers import monthly_policy, run_days
from tests.integration.dashboard_helpers import dashboard, make_user, small_book

KPI = re.compile(r'<tr data-testid="kpi-(\w+)">.*?data-value="([^"]*)"', re.S)


def csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def logged_in(live_server: Any, db: Any, role: str = "finance", name: str = "fay") -> Any:
    make_user(db, role, name)
    client = dashboard(live_server.base_url)
    assert client.login(name).status_code == 303
    return client


def test_the_home_page_kpis_are_the_kpis_api(api, db, live_server):
    small_book(api, db)
    client = logged_in(live_server, db)
    period = {"from": "2026-01-01", "to": "2026-12-31"}
    page = client.get("/dashboard/", params={**period, "currency": "usd"})
    assert page.status_code == 200, page.text
    shown = dict(KPI.findall(page.text))
    (want,) = api.get("/reports/kpis", params=period).json()["currencies"]
    assert want["billed"] > 0 and want["suspense_count"] == 1
    for key in ("billed", "collected", "closing_receivables", "suspense_count",
                "suspense_amount", "written_off"):  # fmt: skip
        assert int(shown[key]) == want[key], key
    for key in ("collection_rate", "cei", "dso"):
        expected = want[key]
        assert (shown[key] or None) == expected or Decimal(shown[key]) == Decimal(expected), key
    (row,) = csv_rows(client.get("/dashboard/kpis.csv", params=period))
    assert row["currency"] == "USD" and row["suspense_count"] == "1"
    assert row["billed"] == f"{want['billed'] // 100}.{want['billed'] % 100:02d}"
    # Another currency: nothing in it; a bad one: a 400 naming the field.
    assert 'data-testid="kpis-empty"' in client.get("/dashboard/", params={"currency": "EUR"}).text
    bad = client.get("/dashboard/", params={"currency": "EURO"})
    assert bad.status_code == 400 and "currency:" in bad.text


def test_the_aging_page_and_csv_are_the_aging_report(api, db, live_server):
    small_book(api, db)
    client = logged_in(live_server, db)
    as_of = {"as_of": "2026-03-15"}
    report = api.get("/reports/aging", params=as_of).json()
    (usd,) = report["currencies"]
    assert usd["total"] > 0
    page = client.get("/dashboard/aging", params=as_of)
    assert page.status_code == 200, page.text
    cells = dict(re.findall(r'data-bucket="(\w+)" data-value="(-?\d+)"', page.text))
    assert {b: int(v) for b, v in cells.items()} == {
        b: usd[b] for b in ("current", "1_30", "31_60", "61_90", "over_90")
    }
    for row in report["data"]:
        assert f'data-testid="aging-{row["policy_id"]}"' in page.text
    ours = client.get("/dashboard/aging.csv", params=as_of)
    theirs = api.get("/reports/aging", params={**as_of, "format": "csv"})
    assert ours.status_code == 200 and ours.text == theirs.text
    assert len(csv_rows(ours)) == len(report["data"]) > 0


def test_the_worklist_riskiest_first_and_the_funnel_from_collections(api, db, live_server,
                                                                     settings):  # fmt: skip
    small = monthly_policy(api, "COL-9", premium=60000)
    big = monthly_policy(api, "COL-10", premium=240000)
    run_days(db, settings, "2025-12-18", "2026-01-20")
    client = logged_in(live_server, db)
    as_of = {"as_of": "2026-01-20"}
    page = client.get("/dashboard/collections", params=as_of)
    assert page.status_code == 200, page.text
    listed = re.findall(r'data-testid="worklist-(pol_\w+)"', page.text)
    assert listed == [big["id"], small["id"]]
    want = api.get("/reports/collections-worklist", params=as_of).json()["data"]
    rows = csv_rows(client.get("/dashboard/collections.csv", params=as_of))
    assert [(r["policy_id"], r["state"], r["days_overdue"], r["last_step"]) for r in rows] == [
        (w["policy_id"], w["state"], str(w["days_overdue"]), w["last_step"]["step"]) for w in want
    ]
    home = client.get("/dashboard/")
    funnel = dict(re.findall(r'data-label="([a-z ]+)" data-value="(\d+)"><title>', home.text))
    assert funnel["in grace"] == str(sum(w["state"] == "in_grace" for w in want)) == "2"
    assert funnel["active"] == "0"
    assert client.get("/dashboard/collections", params={"after": "nope"}).status_code == 400


@pytest.fixture
def sink() -> Any:
    with WebhookSink() as receiver:
        yield receiver


def test_notifications_and_deliveries_listed_and_redelivered_by_the_admin(
    api, db, live_server, settings, sink
):
    endpoint = api.post("/webhook-endpoints", json={"url": sink.url, "events": ["invoice.issued"]})
    assert endpoint.status_code == 201, endpoint.text
    sink.secret = endpoint.json()["secret"]
    holder = create_policyholder(api)
    create_policy(api, holder["id"], lines=[pet_line("Rex")])
    api.post("/jobs/issue_invoices/runs", json={"as_of": "2026-01-20"})
    assert until_idle(lambda: deliver_pass(db, settings)) == 1

    finance = logged_in(live_server, db)
    emails = api.get("/notifications").json()["data"]
    assert emails  # the invoice's email, queued
    page = finance.get("/dashboard/notifications")
    assert page.status_code == 200, page.text
    for email in emails:
        assert f'data-testid="notification-{email["id"]}"' in page.text
    counts = dict(re.findall(r'data-testid="count-(\w+)">(\d+)<', page.text))
    assert counts == {s: str(sum(e["status"] == s for e in emails)) for s in
                      ("queued", "sent", "failed")}  # fmt: skip
    assert [r["notification_id"] for r in csv_rows(finance.get("/dashboard/notifications.csv"))
            ] == [e["id"] for e in reversed(emails)]  # fmt: skip
    assert finance.get("/dashboard/notifications", params={"status": "x"}).status_code == 400

    (delivery,) = api.get(f"/webhook-endpoints/{endpoint.json()['id']}/deliveries").json()["data"]
    page = finance.get("/dashboard/deliveries")
    assert f'data-testid="delivery-{delivery["id"]}"' in page.text
    assert "Redeliver" not in page.text  # finance reads; only the admin redelivers
    (row,) = csv_rows(finance.get("/dashboard/deliveries.csv"))
    assert (row["delivery_id"], row["status"], row["url"]) == (delivery["id"], "succeeded",
                                                               sink.url)  # fmt: skip
    action = f"/dashboard/events/{delivery['event_id']}/redeliver"
    assert finance.submit("/dashboard/deliveries", action, {}).status_code == 403

    admin = logged_in(live_server, db, "admin", "ann")
    assert admin.post(action, {}).status_code == 400  # no CSRF token: nothing happens
    assert api.get(f"/webhook-endpoints/{endpoint.json()['id']}/deliveries").json()["data"][0][
        "status"] == "succeeded"  # fmt: skip
    assert "Redeliver" in admin.get("/dashboard/deliveries").text
    done = admin.submit("/dashboard/deliveries", action, {})
    assert done.status_code == 303
    assert (
        f"Redelivering {delivery['event_id']}: 1 delivery"
        in admin.get("/dashboard/deliveries").text
    )
    assert until_idle(lambda: deliver_pass(db, settings)) == 1
    assert len(sink.events) == 2 and sink.events[0]["id"] == sink.events[1]["id"]


def checked_out_after(db: Any, seconds: float = 3.0) -> int:
    """The pool's connections still checked out once the server had time to end a stream."""
    deadline = time.monotonic() + seconds
    while (out := db.engine.pool.checkedout()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return int(out)


def test_a_csv_download_gives_its_connection_back(api, db, live_server):
    """A streamed CSV reads in a session of its own, closed with the stream: none is left
    checked out (the request's session, torn down before the stream is read, used to be
    reopened by it and never closed: "Connection deleted while still open")."""
    small_book(api, db)
    client = logged_in(live_server, db)
    for path in ("suspense.csv", "refunds.csv", "reconciliation/runs.csv", "collections.csv",
                 "notifications.csv", "deliveries.csv", "kpis.csv", "trial-balance.csv",
                 "aging.csv"):  # fmt: skip
        assert client.get(f"/dashboard/{path}").status_code == 200, path
        assert checked_out_after(db) == 0, path
