"""Arranging invoices for the payment and ledger tests: an invoice row journaled exactly as
the invoicing job journals a batch (services.ledger.record_invoice_issued)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from datetime import date
from typing import Any

from sqlalchemy import func, select

from premium_billing.invoicing.journal import record_invoice_issued
from premium_billing.invoicing.models import Invoice
from premium_billing.payments.credits import apply_credit_balances
from premium_billing.policies.models import Policy
from premium_billing.reports.check import check
from tests.factories import create_policy, create_policyholder

_numbers = itertools.count(1)


def number(public_id: str) -> int:
    return int(public_id.split("_", 1)[1])


def new_policy(api: Any, holder_id: str | None = None, currency: str = "USD") -> dict[str, Any]:
    return create_policy(
        api,
        policyholder_id=holder_id,
        policy_number=f"PET-T{next(_numbers):06d}",
        currency=currency,
    )


def new_holder(api: Any, **overrides: Any) -> dict[str, Any]:
    return create_policyholder(api, **overrides)


def issue_invoices(
    db: Any, policy_id: str, totals: list[int], due: str = "2026-02-01", credit: bool = True
) -> list[str]:
    """Issue invoices of these totals on the policy as one journaled batch; apply credit."""
    with db.session() as session:
        policy = session.get(Policy, number(policy_id))
        assert policy is not None
        seq = session.scalar(select(func.coalesce(func.max(Invoice.number_seq), 0)))
        invoices = []
        for offset, total in enumerate(totals, start=1):
            invoices.append(
                Invoice(
                    number_seq=seq + offset,
                    number=f"INV-T-{seq + offset:06d}",
                    policy_id=policy.id,
                    policyholder_id=policy.policyholder_id,
                    currency=policy.currency,
                    issue_date=date.fromisoformat(due),
                    due_date=date.fromisoformat(due),
                    lines=[{"kind": "premium", "description": "Premium", "amount": total}],
                    total=total,
                    amount_paid=0,
                    amount_written_off=0,
                    amount_due=total,
                    status="open",
                )
            )
        session.add_all(invoices)
        session.flush()
        record_invoice_issued(session, invoices)
        if credit:
            apply_credit_balances(session, [i.id for i in invoices])
        session.commit()
        return [f"inv_{i.id}" for i in invoices]


def issue_invoice(db: Any, policy_id: str, total: int, due: str = "2026-02-01") -> str:
    return issue_invoices(db, policy_id, [total], due)[0]


def ledger_problems(db: Any) -> list[str]:
    with db.session() as session:
        return check(session)


def pay(api: Any, amount: int, **overrides: Any) -> dict[str, Any]:
    body = {"amount": amount, "currency": "USD", "method": "check", "received_on": "2026-02-03"}
    body.update(overrides)
    response = api.post("/payments", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def allocate(api: Any, payment_id: str, *pairs: tuple[str, int], **extra: Any) -> Any:
    body = {"allocations": [{"invoice_id": i, "amount": a} for i, a in pairs], **extra}
    return api.post(f"/payments/{payment_id}/allocations", json=body)


def invoice(api: Any, invoice_id: str) -> dict[str, Any]:
    response = api.get(f"/invoices/{invoice_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    # Fixed business dates, as the `settings` fixture: time travel on.
    env = {**os.environ, "DATABASE_URL": database_url, "ALLOW_TIME_TRAVEL": "true"}
    return subprocess.run(
        [sys.executable, "-m", "premium_billing", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
