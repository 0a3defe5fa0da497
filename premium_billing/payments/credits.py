"""Credit balances: money of a known policyholder not allocated to any invoice. It is applied
to that policyholder's next invoices as they are issued (a `credit` line), or refunded."""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from premium_billing.audit import trail as audit
from premium_billing.config import Settings
from premium_billing.db.bulk import any_of
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.money import format_major
from premium_billing.payments.models import Payment
from premium_billing.payments.posting import Batch, Plan
from premium_billing.payments.rules import OpenItem, oldest_first

log = logging.getLogger(__name__)

_DEFAULTS = Settings()


def apply_credit_balances(
    session: Session, invoice_ids: list[int], settings: Settings | None = None
) -> int:
    """Apply the credit balances of the invoices' policyholders to these (newly issued,
    flushed) invoices, oldest credit first, oldest due date first; each credited invoice gets
    a `credit` line (negative amount; `total` is unchanged, the credit counts as paid).

    Posted by the posting engine as one batch (payments locked, then invoices; a
    `credit_applied` entry per issue date; no tolerance write-off: credit is not a payment
    short of an invoice). Runs inside the caller's transaction (no commit). When nobody has
    credit this is one query on a partial index. Returns how many invoices received credit."""
    if not invoice_ids:
        return 0
    holders = select(Invoice.policyholder_id).where(any_of(session, Invoice.id, invoice_ids))
    creditors = session.execute(
        select(Payment.id, Payment.policyholder_id, Payment.currency, Payment.received_on)
        .where(
            Payment.policyholder_id.in_(holders),
            Payment.policyholder_id.is_not(None),
            Payment.amount_unapplied > 0,
        )
        .order_by(Payment.id)
    ).all()
    if not creditors:
        return 0
    settings = settings or _DEFAULTS
    wanted = {(row.policyholder_id, row.currency) for row in creditors}
    candidates = [
        (i.id, i.issue_date, i.due_date)
        for i in session.execute(
            select(
                Invoice.id, Invoice.policyholder_id, Invoice.currency, Invoice.status,
                Invoice.issue_date, Invoice.due_date,
            )
            .where(any_of(session, Invoice.id, invoice_ids))
            .order_by(Invoice.id)
        )
        if (i.policyholder_id, i.currency) in wanted and i.status in PAYABLE_STATUSES
    ]  # fmt: skip
    if not candidates:
        return 0
    dates = {invoice_id: (issued, due) for invoice_id, issued, due in candidates}
    batch = Batch(session, settings, on=min(d[0] for d in dates.values()), reason="credit",
                  memo="credit balance applied")  # fmt: skip
    payments = batch.lock_payments(row.id for row in creditors)
    invoices = batch.lock_invoices(dates)
    credited: dict[int, int] = defaultdict(int)
    for row in sorted(creditors, key=lambda r: (r.received_on, r.id)):  # oldest credit first
        pay = payments.get(row.id)
        if pay is None or pay.holder is None or pay.unapplied <= 0:
            continue
        items = [
            OpenItem(i.id, dates[i.id][1].isoformat(), i.due)
            for i in invoices.values()
            if i.holder == pay.holder and i.currency == pay.currency and i.due > 0
            and i.status in PAYABLE_STATUSES
        ]  # fmt: skip
        merged = oldest_first(pay.unapplied, items)
        if not merged:
            continue
        plan = Plan(
            pay.id, sorted(merged.items()), rule=None, write_off=False,
            on=min(dates[i][0] for i in merged),
        )  # fmt: skip
        if batch.allocate(plan) is None:
            for invoice_id, amount in merged.items():
                credited[invoice_id] += amount
    batch.write()
    for invoice_id, amount in sorted(credited.items()):
        _add_credit_line(session, invoice_id, amount)
    if credited:
        log.info(
            "credit applied",
            extra={"event": "credit_applied", "invoices": len(credited)},
        )
    return len(credited)


def _add_credit_line(session: Session, invoice_id: int, amount: int) -> None:
    invoice = session.get(Invoice, invoice_id)
    assert invoice is not None
    lines = [dict(line) for line in (invoice.lines or [])]
    before = list(lines)
    lines.append(
        {
            "kind": "credit",
            "description": f"Credit balance applied ({format_major(amount, invoice.currency)})",
            "amount": -amount,
        }
    )
    session.execute(
        update(Invoice)
        .where(Invoice.id == invoice.id)
        .values(lines=lines)
        .execution_options(synchronize_session=False)
    )
    session.expire(invoice)
    audit.record(
        session, "update", "invoices", invoice.id, before={"lines": before}, after={"lines": lines}
    )


def credit_balance(session: Session, policyholder_id: int) -> dict[str, int]:
    """{currency: credit balance} of a policyholder, minor units."""
    rows = session.execute(
        select(Payment.currency, func.sum(Payment.amount_unapplied))
        .where(Payment.policyholder_id == policyholder_id, Payment.amount_unapplied > 0)
        .group_by(Payment.currency)
    )
    return {currency: int(total) for currency, total in rows}
