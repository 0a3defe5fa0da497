"""Every list endpoint answers in a bounded number of queries, however many rows it lists."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from premium_billing.jobs.runner import run_job

from ..factories import create_policy
from .recon_helpers import csv_file, upload

LISTS = [
    "/policyholders",
    "/policies",
    "/invoices",
    "/payments",
    "/refunds",
    "/reconciliation/suspense",
    "/jobs",
]


@contextmanager
def counted(db: Any) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def _book(api: Any, db: Any, settings: Any, n: int, tag: str) -> None:
    """n policies with an invoice each, n payments: half matched (allocations, a write-off
    of a small remainder, a refund), half left in suspense."""
    for i in range(n):
        create_policy(
            api, policy_number=f"Q-{tag}-{i}", billing_plan="annual", effective_date="2026-01-01"
        )
    from datetime import date

    run_job(db, settings, "issue_invoices", date(2026, 1, 1))
    invoices = [
        inv for inv in api.get("/invoices?limit=500").json()["data"] if inv["status"] == "open"
    ]
    rows = []
    for i, inv in enumerate(invoices[:n]):
        amount = inv["amount_due"] - 50 if i % 2 == 0 else 1234
        reference = inv["number"] if i % 2 == 0 else f"unknown {tag} {i}"
        rows.append(f"2026-01-05,{amount / 100:.2f},USD,Payer {i},{reference},BR-{tag}-{i}")
    assert upload(api, csv_file(*rows), name=f"{tag}.csv").status_code == 201
    assert api.post("/reconciliation/runs", json={"as_of": "2026-01-05"}).status_code == 201
    applied = api.get("/payments?status=applied&limit=1").json()["data"]
    if applied:
        assert api.post(f"/payments/{applied[0]['id']}/refunds", json={"amount": 100}).ok


def _queries(api: Any, db: Any, path: str) -> int:
    with counted(db) as statements:
        response = api.get(f"{path}?limit=500" if "?" not in path else path)
    assert response.status_code == 200, response.text
    return len(statements)


@pytest.mark.parametrize("path", LISTS)
def test_list_queries_do_not_grow_with_the_rows(api, db, settings, path):
    _book(api, db, settings, 2, "a")
    few = _queries(api, db, path)
    _book(api, db, settings, 10, "b")
    many = _queries(api, db, path)
    assert many == few, f"{path}: {few} queries for a few rows, {many} for more"
    assert many <= 12, f"{path}: {many} queries"
