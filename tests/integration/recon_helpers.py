"""Arranging bank files and invoices for the statement import and reconciliation tests."""

from __future__ import annotations

from typing import Any

from premium_billing.invoicing.models import Invoice
from tests.integration.ledger_helpers import issue_invoices, new_holder, new_policy, number

HEADER = "date,amount,currency,payer_name,reference,bank_reference"


def csv_file(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def upload(api: Any, content: bytes, name: str = "statement.csv", **form: str) -> Any:
    return api.post("/bank-statements", files={"file": (name, content)}, data=form)


def holder_with_invoices(
    api: Any, db: Any, name: str, totals: list[int], currency: str = "USD"
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A policyholder, a policy and open invoices: [(public id, invoice number)]."""
    holder = new_holder(api, name=name)
    policy = new_policy(api, holder["id"], currency=currency)
    ids = issue_invoices(db, policy["id"], totals)
    with db.session() as s:
        numbers = [s.get(Invoice, number(i)).number for i in ids]
    return policy, list(zip(ids, numbers, strict=True))
