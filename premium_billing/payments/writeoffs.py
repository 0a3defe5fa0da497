"""Write-offs by hand (POST /invoices/{id}/write-off), posted by the posting engine.

A tolerance write-off is not a road of its own: the engine writes off a remainder within
tolerance in the posting that leaves it (`payments.rules.tolerance_write_offs`), and
reverses it when that posting's allocation is taken back."""

from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.invoicing.models import Invoice
from premium_billing.payments.posting import Batch, finish, raise_refusal

log = logging.getLogger(__name__)


def write_off(
    session: Session,
    settings: Settings,
    invoice_id: int,
    reason: str | None,
    *,
    on: date | None = None,
    commit: bool = True,
) -> Invoice:
    """Write off what is still due on an invoice (writeoff_expense ← premium receivable):
    a batch of one. Unknown: 404; void or nothing due: 409."""
    batch = Batch(
        session, settings, on=on or business_date(settings.timezone), reason="write_off",
        memo=reason,
    )  # fmt: skip
    batch.lock_invoices([invoice_id])
    why = batch.write_off(invoice_id, reason)
    if why is not None:
        raise_refusal(why)
    batch.write()
    finish(session, commit)
    log.info(
        "invoice written off",
        extra={"event": "written_off", "invoice_id": invoice_id, "kind": "manual"},
    )
    fresh = session.scalar(
        select(Invoice).where(Invoice.id == invoice_id).execution_options(populate_existing=True)
    )
    assert fresh is not None
    return fresh
