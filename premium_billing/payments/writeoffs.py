"""Write-offs: an invoice's remainder written off by hand (POST /invoices/{id}/write-off)
or automatically when a payment leaves an underpaid remainder within tolerance."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.errors import Conflict
from premium_billing.invoicing.models import Invoice
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.journal import post
from premium_billing.payments.models import WriteOff
from premium_billing.payments.posting import _finish, bump_invoice, lock_invoices

log = logging.getLogger(__name__)


def write_off_locked(
    session: Session,
    settings: Settings,
    invoice: Invoice,
    *,
    kind: str,
    reason: str | None,
    payment_id: int | None = None,
    on: date,
) -> WriteOff:
    """Write off the whole amount due of a locked invoice (journal, row, amounts)."""
    if invoice.status == "void":
        raise Conflict("a void invoice cannot be written off")
    amount = invoice.amount_due
    if amount <= 0:
        raise Conflict("the invoice has nothing due to write off")
    entry = post(
        session,
        ledger.WRITTEN_OFF,
        on,
        ledger.written_off(amount, invoice.currency, invoice.id, invoice.policyholder_id),
        memo=reason,
    )
    row = WriteOff(
        invoice_id=invoice.id,
        amount=amount,
        kind=kind,
        reason=reason,
        payment_id=payment_id,
        entry_id=entry.id,
    )
    session.add(row)
    session.flush()
    bump_invoice(session, settings, invoice.id, written_off=amount)
    log.info(
        "invoice written off",
        extra={"event": "written_off", "invoice_id": invoice.id, "amount": amount, "kind": kind},
    )
    return row


def write_off(
    session: Session,
    settings: Settings,
    invoice_id: int,
    reason: str | None,
    *,
    on: date | None = None,
    commit: bool = True,
) -> Invoice:
    """Write off what is still due on an invoice (writeoff_expense ← premium receivable)."""
    invoice = lock_invoices(session, [invoice_id]).get(invoice_id)
    if invoice is None:
        from premium_billing.errors import NotFound

        raise NotFound("invoice not found")
    write_off_locked(
        session,
        settings,
        invoice,
        kind="manual",
        reason=reason,
        on=on or business_date(settings.timezone),
    )
    _finish(session, commit)
    fresh = session.scalar(
        select(Invoice).where(Invoice.id == invoice_id).execution_options(populate_existing=True)
    )
    assert fresh is not None
    return fresh


def reverse_tolerance_write_offs(
    session: Session,
    settings: Settings,
    payment_id: int,
    invoice_ids: Sequence[int],
    *,
    on: date,
) -> int:
    """Reverse the standing tolerance write-offs a payment caused on these (locked)
    invoices: when its allocation is undone the remainder is owed again. Returns how many."""
    reversal = aliased(WriteOff)
    standing = session.scalars(
        select(WriteOff)
        .outerjoin(reversal, reversal.reverses_id == WriteOff.id)
        .where(
            WriteOff.payment_id == payment_id,
            WriteOff.kind == "tolerance",
            WriteOff.invoice_id.in_(list(invoice_ids)),
            reversal.id.is_(None),
        )
        .order_by(WriteOff.id)
    ).all()
    for original in standing:
        invoice = session.get(Invoice, original.invoice_id)
        assert invoice is not None
        entry = post(
            session,
            ledger.WRITEOFF_REVERSED,
            on,
            ledger.written_off(
                -original.amount, invoice.currency, invoice.id, invoice.policyholder_id
            ),
            memo="allocation undone",
        )
        session.add(
            WriteOff(
                invoice_id=original.invoice_id,
                amount=-original.amount,
                kind="reversal",
                reason="allocation undone",
                payment_id=payment_id,
                reverses_id=original.id,
                entry_id=entry.id,
            )
        )
        session.flush()
        bump_invoice(session, settings, original.invoice_id, written_off=-original.amount)
    return len(standing)
