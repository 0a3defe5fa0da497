"""Arranging and checking the settlement tests: policies on the issue's examples, paid by
check, and the books checked after each step (ledger check and audit verify)."""

from __future__ import annotations

from datetime import date
from typing import Any

from premium_billing.audit import trail
from premium_billing.jobs.runner import run_job
from premium_billing.reports.check import check
from tests.factories import create_policy, create_policyholder, pet_line

NO_FEES = {"policy_fee": 0, "installment_fee": 0}


def books_ok(db: Any) -> None:
    """`ledger check` finds nothing and `audit verify` passes."""
    with db.session() as session:
        assert check(session) == []
        verification = trail.verify(session)
        assert verification.problem is None, verification.problem


def policy_on(
    api: Any,
    plan: str,
    *,
    number: str,
    holder: str | None = None,
    premium: int = 100000,
    effective: str = "2026-01-01",
    fees: dict[str, int] | None = None,
) -> dict[str, Any]:
    holder = holder or create_policyholder(api)["id"]
    return create_policy(
        api,
        holder,
        policy_number=number,
        effective_date=effective,
        billing_plan=plan,
        lines=[pet_line(annual_premium=premium)],
        fees=fees or NO_FEES,
    )


def issue(db: Any, settings: Any, on: str) -> None:
    run_job(db, settings, "issue_invoices", date.fromisoformat(on))


def invoices_of(api: Any, policy_id: str) -> list[dict[str, Any]]:
    rows = api.get("/invoices", params={"policy_id": policy_id, "limit": 100}).json()["data"]
    return sorted(rows, key=lambda i: (i["due_date"], i["id"]))


def pay_by_check(
    api: Any, invoice: dict[str, Any], amount: int | None = None, on: str = "2026-01-05"
) -> dict[str, Any]:
    amount = invoice["amount_due"] if amount is None else amount
    payment = api.post(
        "/payments",
        json={"amount": amount, "currency": invoice["currency"], "method": "check",
              "received_on": on, "policyholder_id": invoice["policyholder_id"]},
    )  # fmt: skip
    assert payment.status_code == 201, payment.text
    allocated = api.post(
        f"/payments/{payment.json()['id']}/allocations",
        json={"allocations": [{"invoice_id": invoice["id"], "amount": amount}]},
    )
    assert allocated.status_code == 201, allocated.text
    return dict(allocated.json())


def cancel(api: Any, policy_id: str, on: str, method: str = "pro_rata", **headers: str) -> Any:
    return api.post(
        f"/policies/{policy_id}/cancellations",
        json={"effective_date": on, "method": method, "reason": "test"},
        headers=headers or None,
    )


def accounts(api: Any, currency: str = "USD") -> dict[str, int]:
    """The trial balance's balance per account (debit − credit)."""
    tb = api.get("/reports/trial-balance", params={"as_of": "2099-12-31"}).json()
    for block in tb["currencies"]:
        if block["currency"] == currency:
            assert block["balanced"]
            return {row["account"]: row["balance"] for row in block["accounts"]}
    return {}


def statement(api: Any, holder: str) -> dict[str, Any]:
    response = api.get(
        f"/policyholders/{holder}/statement", params={"from": "2026-01-01", "to": "2099-12-31"}
    )
    assert response.status_code == 200, response.text
    found = response.json()["accounts"]
    if not found:  # nothing ever moved
        return {"currency": None, "lines": [], "closing_balance": 0}
    (account,) = found
    return dict(account)


def balances(api: Any, holder: str) -> tuple[int, int]:
    body = api.get(f"/policyholders/{holder}").json()
    return body["balance"], body["credit_balance"]
