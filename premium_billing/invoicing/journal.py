"""Journaling issued invoices through the ledger's checked entry kinds."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

from sqlalchemy.orm import Session

from premium_billing.invoicing.models import Invoice
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.journal import post
from premium_billing.ledger.models import JournalEntry


def record_invoice_issued(
    session: Session,
    invoices: Sequence[Invoice],
    occurred_on: date | None = None,
    *,
    job_run_id: int | None = None,
) -> JournalEntry:
    """Journal a batch of issued invoices as one `invoice_issued` entry (per currency:
    receivable debit, billed credit, untagged) and point each invoice's `issue_entry_id` at
    it. The invoices must be flushed (have ids). Not committed."""
    totals: dict[str, int] = defaultdict(int)
    for invoice in invoices:
        totals[invoice.currency] += invoice.total
    on = occurred_on or min((i.issue_date for i in invoices), default=date.today())
    entry = post(
        session,
        ledger.INVOICE_ISSUED,
        on,
        ledger.invoice_issued(totals),
        memo=f"{len(invoices)} invoice(s) issued",
        job_run_id=job_run_id,
    )
    for invoice in invoices:
        invoice.issue_entry_id = entry.id
    session.flush()
    return entry
