"""Credit balances: money of a known policyholder not allocated to any invoice. It is applied
to that policyholder's next invoices as they are issued (a `credit` line), or refunded."""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from premium_billing.audit import trail as audit
from premium_billing.config import Settings
from premium_billing.invoicing.models import Invoice
from premium_billing.money import format_major
from premium_billing.payments.models import Payment
from premium_billing.payments.posting import apply, lock_invoices
from premium_billing.payments.rules import OpenItem, oldest_first

log = logging.getLogger(__name__)

_DEFAULTS = Settings()


def apply_credit_balances(
    session: Session, invoice_ids: list[int], settings: Settings | None = None
) -> int:
    """Apply the credit balances of the invoices' policyholders to these (newly issued,
    flushed) invoices, oldest credit first, oldest due date first; each credited invoice gets
    a `credit` line (negative amount; `total` is unchanged, the credit counts as paid).

    Runs inside the caller's transaction (no commit). When nobody has credit this is one
    query on a partial index. Returns how many invoices received credit."""
    if not invoice_ids:
        return 0
    holders = select(Invoice.policyholder_id).where(Invoice.id.in_(invoice_ids))
    creditors = session.execute(
        select(Payment.id, Payment.policyholder_id, Payment.currency)
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
        i
        for i in session.scalars(
            select(Invoice).where(Invoice.id.in_(invoice_ids)).order_by(Invoice.id)
        )
        if (i.policyholder_id, i.currency) in wanted and i.status in ("open", "partially_paid")
    ]
    invoices = lock_invoices(session, [i.id for i in candidates])
    due: dict[int, int] = {i.id: i.amount_due for i in invoices.values()}
    credited: dict[int, int] = defaultdict(int)
    payments = session.scalars(
        select(Payment)
        .where(Payment.id.in_([row.id for row in creditors]))
        .order_by(Payment.received_on, Payment.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    for payment in payments:
        items = [
            OpenItem(i.id, i.due_date.isoformat(), due[i.id])
            for i in invoices.values()
            if i.policyholder_id == payment.policyholder_id
            and i.currency == payment.currency
            and due[i.id] > 0
        ]
        merged = oldest_first(payment.amount_unapplied, items)
        if not merged:
            continue
        apply(
            session,
            settings,
            payment,
            invoices,
            merged,
            reason="credit",
            on=min(invoices[i].issue_date for i in merged),
        )
        for invoice_id, amount in merged.items():
            due[invoice_id] -= amount
            credited[invoice_id] += amount
    for invoice_id, amount in sorted(credited.items()):
        _add_credit_line(session, invoices[invoice_id], amount)
    if credited:
        log.info(
            "credit applied",
            extra={"event": "credit_applied", "invoices": len(credited)},
        )
    return len(credited)


def _add_credit_line(session: Session, invoice: Invoice, amount: int) -> None:
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
