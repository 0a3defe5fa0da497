"""Arranging the dashboard's tests: users, a logged-in client over real HTTP (its forms'
CSRF tokens read from the pages, as a browser has them), and a small book with a suspense
payment that has candidates and a refund to pay by check."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests

from premium_billing.dashboard.users import create_user
from tests.integration.ledger_helpers import pay
from tests.integration.recon_helpers import csv_file, holder_with_invoices, upload

PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_user(db: Any, role: str = "finance", name: str = "fay", password: str = PASSWORD) -> int:
    with db.session() as session:
        return create_user(session, role, name, password).id


def token_of(html: str) -> str:
    found = TOKEN.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


@dataclass
class Dashboard:
    """A browser-like client of /dashboard: cookies kept, redirects not followed."""

    base_url: str
    session: requests.Session

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.base_url + path, allow_redirects=False, timeout=30, **kw)

    def post(self, path: str, data: dict[str, str], **kw: Any) -> requests.Response:
        return self.session.post(
            self.base_url + path, data=data, allow_redirects=False, timeout=30, **kw
        )

    def token(self, page: str = "/dashboard/login") -> str:
        return token_of(self.get(page).text)

    def login(self, name: str = "fay", password: str = PASSWORD) -> requests.Response:
        return self.post(
            "/dashboard/login",
            {"name": name, "password": password, "csrf_token": self.token()},
        )

    def submit(self, page: str, action: str, data: dict[str, str]) -> requests.Response:
        """POST a form of `page` with the page's own CSRF token."""
        return self.post(action, {**data, "csrf_token": self.token(page)})


def dashboard(base_url: str) -> Dashboard:
    return Dashboard(base_url, requests.Session())


@dataclass(frozen=True)
class Book:
    suspense_payment: str  # pay_… in suspense, its first candidate Ann Lee's invoice
    ann_invoice: str
    ann_number: str
    refund: str  # re_… owed by check
    refund_payment: str


def small_book(api: Any, db: Any) -> Book:
    """Ann Lee owes 72.50 on one invoice; a bank line quoting her invoice number with a typo,
    paid by someone else, waits in suspense (a run examined it); a check payment of 50.00
    is refunded in full: a refund to pay by check."""
    _, [(ann_inv, ann_num)] = holder_with_invoices(api, db, "Ann Lee", [7250])
    holder_with_invoices(api, db, "Raj Patel", [7250])
    typo = ann_num[:-2] + ann_num[-1] + ann_num[-2]
    upload(api, csv_file(f"2026-02-03,72.50,USD,A N Other,{typo},B-1"))
    run = api.post("/reconciliation/runs", json={"as_of": "2026-02-10"})
    assert run.status_code == 201, run.text
    (row,) = api.get("/reconciliation/suspense").json()["data"]
    assert row["candidates"][0]["invoice_id"] == ann_inv
    check = pay(api, 5000, method="check", payer_name="Bo Check")
    owed = api.post(f"/payments/{check['id']}/refunds", json={"amount": 5000})
    assert owed.status_code in (200, 201), owed.text
    (refund,) = api.get("/refunds", params={"payment_id": check["id"]}).json()["data"]
    assert (refund["channel"], refund["status"]) == ("check", "pending")
    return Book(row["payment"]["id"], ann_inv, ann_num, refund["id"], check["id"])
