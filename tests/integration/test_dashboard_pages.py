"""The dashboard's pages over real HTTP on every backend: each write goes through the API's
service (the same rows, audited with the user as the actor), CSRF refuses a form without
its token, the auditor reads and changes nothing, each list's CSV is a real text/csv file."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from premium_billing.audit.models import AuditLog
from tests.integration.dashboard_helpers import dashboard, make_user, small_book, token_of
from tests.integration.ledger_helpers import pay


def rows_of(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_match_undo_and_mark_paid_through_the_pages(api, db, live_server):
    book = small_book(api, db)
    user_id = make_user(db, "finance", "fay")
    client = dashboard(live_server.base_url)
    assert client.login().status_code == 303

    page = client.get("/dashboard/suspense")
    assert page.status_code == 200
    assert f'data-testid="suspense-{book.suspense_payment}"' in page.text
    matched = client.submit(
        "/dashboard/suspense",
        f"/dashboard/payments/{book.suspense_payment}/match",
        {"invoice_id": book.ann_invoice, "amount": "7250"},
    )
    assert matched.status_code == 303
    after = client.get("/dashboard/suspense")
    assert f"Matched {book.suspense_payment}: 72.50 USD to {book.ann_invoice}." in after.text
    assert api.get(f"/invoices/{book.ann_invoice}").json()["status"] == "paid"
    assert api.get(f"/payments/{book.suspense_payment}").json()["match"]["rule"] == "manual"
    assert f'data-testid="match-{book.suspense_payment}"' in after.text

    undone = client.submit(
        "/dashboard/suspense", f"/dashboard/payments/{book.suspense_payment}/undo", {}
    )
    assert undone.status_code == 303
    assert api.get(f"/invoices/{book.ann_invoice}").json()["status"] == "open"
    queue = api.get("/reconciliation/suspense").json()["data"]
    assert [(r["payment"]["id"], r["held"]) for r in queue] == [(book.suspense_payment, True)]

    # A refused write says why and changes nothing (more than the payment has).
    refused = client.submit(
        "/dashboard/suspense",
        f"/dashboard/payments/{book.suspense_payment}/match",
        {"invoice_id": book.ann_invoice, "amount": "999999"},
    )
    assert refused.status_code == 303
    assert "Refused" in client.get("/dashboard/suspense").text
    assert api.get(f"/invoices/{book.ann_invoice}").json()["status"] == "open"

    paid = client.submit(
        "/dashboard/refunds",
        f"/dashboard/refunds/{book.refund}/mark-paid",
        {"method": "check", "reference": "CHK 77"},
    )
    assert paid.status_code == 303
    refund = api.get(f"/refunds/{book.refund}").json()
    assert (refund["status"], refund["method"], refund["reference"]) == (
        "succeeded", "check", "CHK 77",
    )  # fmt: skip
    assert f'data-testid="refund-{book.refund}"' not in client.get("/dashboard/refunds").text

    with db.session() as s:
        actors = set(
            s.execute(
                select(AuditLog.actor_kind, AuditLog.actor_id, AuditLog.actor_name).where(
                    AuditLog.entity.in_(("postings", "payer_links", "suspense_items"))
                )
            ).all()
        )
    assert ("user", f"user_{user_id}", "fay") in actors


def test_csrf_refused_without_or_with_a_wrong_token(api, db, live_server):
    book = small_book(api, db)
    make_user(db, "finance", "fay")
    client = dashboard(live_server.base_url)
    assert client.login().status_code == 303
    action = f"/dashboard/refunds/{book.refund}/mark-paid"
    assert client.get("/dashboard/refunds").status_code == 200  # the session has a token
    missing = client.post(action, {"method": "check"})
    assert missing.status_code == 400 and "The CSRF token is missing." in missing.text
    wrong = client.post(action, {"method": "check", "csrf_token": "forged"})
    assert wrong.status_code == 400 and "The CSRF token is invalid." in wrong.text
    # Another session's token is wrong here too.
    other = dashboard(live_server.base_url)
    stolen = other.token()
    mismatch = client.post(action, {"method": "check", "csrf_token": stolen})
    assert mismatch.status_code == 400 and "The CSRF tokens do not match." in mismatch.text
    assert api.get(f"/refunds/{book.refund}").json()["status"] == "pending"
    login = dashboard(live_server.base_url).post(
        "/dashboard/login", {"name": "fay", "password": "whatever it is"}
    )
    assert login.status_code == 400  # the login form has its token too


def test_the_auditor_reads_but_changes_nothing(api, db, live_server):
    book = small_book(api, db)
    make_user(db, "auditor", "ada")
    make_user(db, "billing", "bill")
    client = dashboard(live_server.base_url)
    assert client.login("ada").status_code == 303
    for path in ("/dashboard/", "/dashboard/suspense", "/dashboard/refunds",
                 "/dashboard/reconciliation", "/dashboard/trial-balance"):  # fmt: skip
        page = client.get(path)
        assert page.status_code == 200, path
        assert "/match" not in page.text and "/mark-paid" not in page.text, path
        assert "/undo" not in page.text
    token = token_of(client.get("/dashboard/refunds").text)
    for action, data in (
        (f"/dashboard/refunds/{book.refund}/mark-paid", {"method": "check"}),
        (
            f"/dashboard/payments/{book.suspense_payment}/match",
            {"invoice_id": book.ann_invoice, "amount": "7250"},
        ),
    ):
        refused = client.post(action, {**data, "csrf_token": token})
        assert refused.status_code == 403, action
        assert "Your role may not do this." in refused.text
    assert api.get(f"/refunds/{book.refund}").json()["status"] == "pending"
    assert api.get(f"/invoices/{book.ann_invoice}").json()["status"] == "open"

    billing = dashboard(live_server.base_url)
    assert billing.login("bill").status_code == 303
    assert billing.get("/dashboard/").status_code == 403  # the API's billing role reads none


def test_each_list_exports_a_csv(api, db, live_server):
    book = small_book(api, db)
    pay(api, 1234, method="bank_transfer", payer_name="=HYPERLINK(1)", reference="@SUM",
        received_on="2026-02-04")  # fmt: skip
    make_user(db, "finance", "fay")
    client = dashboard(live_server.base_url)
    assert client.login().status_code == 303

    suspense = rows_of(client.get("/dashboard/suspense.csv"))
    by_id = {r["payment_id"]: r for r in suspense}
    assert list(by_id) == sorted(by_id, key=lambda i: int(i.split("_")[1]))
    typo = by_id[book.suspense_payment]
    assert (typo["amount"], typo["currency"], typo["payer_name"]) == ("72.50", "USD", "A N Other")
    assert typo["best_suggested_amount"] == "72.50" and typo["candidates"] == "2"
    formula = next(r for r in suspense if r["amount"] == "12.34")
    assert formula["payer_name"] == "'=HYPERLINK(1)" and formula["reference"] == "'@SUM"

    (refund,) = rows_of(client.get("/dashboard/refunds.csv"))
    assert (refund["refund_id"], refund["amount"], refund["channel"]) == (book.refund, "50.00",
                                                                          "check")  # fmt: skip
    (run,) = rows_of(client.get("/dashboard/reconciliation/runs.csv"))
    assert (run["examined"], run["matched"], run["suspense"]) == ("1", "0", "1")

    trial = rows_of(client.get("/dashboard/trial-balance.csv?as_of=2030-01-01"))
    accounts = api.get("/reports/trial-balance", params={"as_of": "2030-01-01"}).json()
    expected = {a["account"]: a for block in accounts["currencies"] for a in block["accounts"]}
    for row in trial:
        if row["account"] != "total":
            debit = expected[row["account"]]["debit"]
            assert row["debit"] == f"{debit // 100}.{debit % 100:02d}"
    assert rows_of(client.get("/dashboard/aging.csv?as_of=2026-02-10"))[0]["currency"] == "USD"
    bad = client.get("/dashboard/trial-balance.csv?as_of=soon")
    assert bad.status_code == 400 and "as_of: a date as YYYY-MM-DD" in bad.text
