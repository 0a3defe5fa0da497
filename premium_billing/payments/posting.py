"""Payment posting: record money received, allocate it to invoices, undo, refund, reverse.

Every movement writes its journal entry, its rows and the invoice/payment amounts in one
transaction. Rows are locked payment first, then invoices in id order (SELECT … FOR UPDATE
on PostgreSQL); amounts change by SQL increments so that the CHECK constraints catch any
lost update (SQLite reads outside a write transaction) instead of overwriting it.
Public functions commit unless `commit=False` (for callers composing a bigger transaction).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from premium_billing.audit import trail as audit
from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.db.errors import violated
from premium_billing.errors import Conflict, NotFound, Unprocessable
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import OverAllocation, invoice_status, within_tolerance
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.journal import post
from premium_billing.payments.models import Allocation, Payment, Refund, WriteOff
from premium_billing.payments.rules import check_allocations, payment_status
from premium_billing.policies.models import Policyholder

log = logging.getLogger(__name__)

INVOICE_AMOUNTS = ("total", "amount_paid", "amount_written_off", "amount_due", "status")
PAYMENT_AMOUNTS = (
    "amount_allocated",
    "amount_refunded",
    "amount_reversed",
    "amount_unapplied",
    "status",
)


# ----------------------------------------------------------------------------- row helpers


def expire(session: Session, model: type, row_id: int) -> None:
    """Expire the loaded object of this row, if any (it was changed by SQL)."""
    obj = session.identity_map.get(identity_key(model, row_id))
    if obj is not None:
        session.expire(obj)


def lock_payment(session: Session, payment_id: int) -> Payment:
    payment = session.scalar(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if payment is None:
        raise NotFound("payment not found")
    return payment


def lock_invoices(session: Session, invoice_ids: Sequence[int]) -> dict[int, Invoice]:
    """The invoices, locked in id order (the one lock order, so racing posts never deadlock)."""
    if not invoice_ids:
        return {}
    rows = session.scalars(
        select(Invoice)
        .where(Invoice.id.in_(sorted(set(invoice_ids))))
        .order_by(Invoice.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {invoice.id: invoice for invoice in rows}


def bump_invoice(
    session: Session, settings: Settings, invoice_id: int, paid: int = 0, written_off: int = 0
) -> dict[str, Any]:
    """Add to an invoice's amount paid / written off (SQL increments), set its status, and
    record the change in the audit trail. Returns the new amounts."""
    values = {
        "amount_paid": Invoice.amount_paid + paid,
        "amount_written_off": Invoice.amount_written_off + written_off,
        "amount_due": Invoice.amount_due - paid - written_off,
    }
    row = session.execute(
        update(Invoice)
        .where(Invoice.id == invoice_id)
        .values(**values)
        .returning(*(getattr(Invoice, c) for c in INVOICE_AMOUNTS))
        .execution_options(synchronize_session=False)
    ).one()
    after = dict(zip(INVOICE_AMOUNTS, row, strict=True))
    before = {
        **after,
        "amount_paid": after["amount_paid"] - paid,
        "amount_written_off": after["amount_written_off"] - written_off,
        "amount_due": after["amount_due"] + paid + written_off,
    }
    status = invoice_status(
        after["total"],
        after["amount_paid"],
        after["amount_written_off"],
        void=after["status"] == "void",
        tolerance_abs=settings.writeoff_tolerance_abs,
        tolerance_pct=settings.writeoff_tolerance_pct,
    )
    if status != after["status"]:
        session.execute(
            update(Invoice)
            .where(Invoice.id == invoice_id)
            .values(status=status)
            .execution_options(synchronize_session=False)
        )
        after["status"] = status
    expire(session, Invoice, invoice_id)
    audit.record(session, "update", "invoices", invoice_id, before=before, after=after)
    return after


def bump_payment(
    session: Session,
    payment_id: int,
    allocated: int = 0,
    refunded: int = 0,
    reversed_amount: int = 0,
    **fields: Any,
) -> dict[str, Any]:
    """Add to a payment's amounts (SQL increments), set its status and `fields`, audit."""
    moved = allocated + refunded + reversed_amount
    row = session.execute(
        update(Payment)
        .where(Payment.id == payment_id)
        .values(
            amount_allocated=Payment.amount_allocated + allocated,
            amount_refunded=Payment.amount_refunded + refunded,
            amount_reversed=Payment.amount_reversed + reversed_amount,
            amount_unapplied=Payment.amount_unapplied - moved,
        )
        .returning(
            Payment.amount, Payment.reversed_on, *(getattr(Payment, c) for c in PAYMENT_AMOUNTS)
        )
        .execution_options(synchronize_session=False)
    ).one()
    amount, reversed_on = row[0], row[1]
    after = dict(zip(PAYMENT_AMOUNTS, row[2:], strict=True))
    before = {
        **after,
        "amount_allocated": after["amount_allocated"] - allocated,
        "amount_refunded": after["amount_refunded"] - refunded,
        "amount_reversed": after["amount_reversed"] - reversed_amount,
        "amount_unapplied": after["amount_unapplied"] + moved,
    }
    is_reversed = fields.get("reversed_on", reversed_on) is not None
    status = payment_status(
        amount,
        after["amount_allocated"],
        after["amount_refunded"],
        after["amount_reversed"],
        reversed=is_reversed,
    )
    changes = dict(fields)
    if status != after["status"]:
        changes["status"] = status
    if changes:
        session.execute(
            update(Payment)
            .where(Payment.id == payment_id)
            .values(**changes)
            .execution_options(synchronize_session=False)
        )
    for key, value in changes.items():
        before.setdefault(key, None)
        after[key] = value
    expire(session, Payment, payment_id)
    audit.record(session, "update", "payments", payment_id, before=before, after=after)
    return after


def _finish(session: Session, commit: bool) -> None:
    if not commit:
        session.flush()
        return
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        # A CHECK caught what a racing transaction changed meanwhile (never over-allocated).
        raise Conflict(
            "the payment or invoice changed meanwhile; nothing was posted, try again"
        ) from error


# ----------------------------------------------------------------------------- receive


def create_payment(
    session: Session,
    data: dict[str, Any],
    *,
    source: str = "manual",
    commit: bool = True,
) -> Payment:
    """Record money received: the payment row and its `payment_received` entry (cash or
    Stripe clearing → suspense, or the payer's credit when the policyholder is known).

    `data`: amount, currency, method, received_on, and optionally reference, payer_name,
    external_id, policyholder_id, match_rule, match_evidence. A second payment with the same
    (source, external_id) is a Conflict."""
    holder_id = data.get("policyholder_id")
    if holder_id is not None and session.get(Policyholder, holder_id) is None:
        raise Unprocessable("unknown policyholder", field="policyholder_id")
    external_id = data.get("external_id")
    if external_id is not None and session.scalar(
        select(Payment.id).where(Payment.source == source, Payment.external_id == external_id)
    ):
        raise Conflict("a payment with this external_id already exists", field="external_id")
    payment = Payment(
        source=source,
        method=data["method"],
        external_id=external_id,
        amount=data["amount"],
        currency=data["currency"],
        received_on=data["received_on"],
        payer_name=data.get("payer_name"),
        reference=data.get("reference"),
        policyholder_id=holder_id,
        payer_from_match=False,
        amount_allocated=0,
        amount_refunded=0,
        amount_reversed=0,
        amount_unapplied=data["amount"],
        status="unapplied",
        match_rule=data.get("match_rule"),
        match_evidence=data.get("match_evidence"),
    )
    session.add(payment)
    try:
        session.flush()
    except IntegrityError as error:
        session.rollback()
        if violated(error, "uq_payments_source_external_id", "payments.source"):
            raise Conflict(
                "a payment with this external_id already exists", field="external_id"
            ) from None
        raise
    entry = post(
        session,
        ledger.PAYMENT_RECEIVED,
        payment.received_on,
        ledger.payment_received(
            payment.amount,
            payment.currency,
            ledger.cash_account(source, payment.method),
            payment.id,
            holder_id,
        ),
    )
    payment.receipt_entry_id = entry.id
    if commit:
        try:
            session.commit()
        except IntegrityError as error:
            session.rollback()
            if violated(error, "uq_payments_source_external_id", "payments.source"):
                raise Conflict(
                    "a payment with this external_id already exists", field="external_id"
                ) from None
            raise
    else:
        session.flush()
    log.info(
        "payment received",
        extra={
            "event": "payment_received",
            "payment_id": payment.id,
            "amount": payment.amount,
            "currency": payment.currency,
            "source": source,
        },
    )
    return payment


def get_payment(session: Session, payment_id: int) -> Payment:
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("payment not found")
    return payment


# ----------------------------------------------------------------------------- allocate


def _identify_payer(session: Session, payment: Payment, policyholder_id: int, on: date) -> None:
    """Suspense money whose payer a match identified moves to that payer's credit."""
    if payment.amount_unapplied > 0:
        post(
            session,
            ledger.PAYER_IDENTIFIED,
            on,
            ledger.payer_identified(
                payment.amount_unapplied, payment.currency, payment.id, policyholder_id
            ),
            memo="payer identified by a match",
        )
    payment.policyholder_id = policyholder_id
    payment.payer_from_match = True
    session.flush()


def apply(
    session: Session,
    settings: Settings,
    payment: Payment,
    invoices: dict[int, Invoice],
    merged: dict[int, int],
    *,
    reason: str,
    on: date,
) -> int:
    """Allocate `merged` ({invoice id: amount}, validated) from a locked payment to locked
    invoices: journal, allocation rows, amounts. Returns the total allocated."""
    if not merged:
        return 0
    first = invoices[min(merged)]
    if payment.policyholder_id is None:
        _identify_payer(session, payment, first.policyholder_id, on)
    kind = ledger.CREDIT_APPLIED if reason == "credit" else ledger.PAYMENT_ALLOCATED
    entry = post(
        session,
        kind,
        on,
        ledger.allocated(merged, payment.currency, payment.id, payment.policyholder_id),
    )
    session.add_all(
        Allocation(
            payment_id=payment.id,
            invoice_id=invoice_id,
            amount=amount,
            reason=reason,
            entry_id=entry.id,
        )
        for invoice_id, amount in sorted(merged.items())
    )
    session.flush()
    total = sum(merged.values())
    bump_payment(session, payment.id, allocated=total)
    for invoice_id, amount in sorted(merged.items()):
        bump_invoice(session, settings, invoice_id, paid=amount)
    return total


def allocate(
    session: Session,
    settings: Settings,
    payment_id: int,
    requested: Sequence[tuple[int, int]],
    *,
    reason: str = "manual",
    rule: str | None = None,
    evidence: dict[str, Any] | None = None,
    auto_write_off: bool = True,
    on: date | None = None,
    commit: bool = True,
) -> Payment:
    """Allocate a payment to invoices ([(invoice id, amount)]). More than the payment's
    unapplied amount or an invoice's amount due is refused (Unprocessable). When the payment
    is then fully applied, an invoice remainder within tolerance is written off."""
    payment = lock_payment(session, payment_id)
    if payment.status == "reversed":
        raise Conflict("a reversed payment cannot be allocated")
    invoices = lock_invoices(session, [invoice_id for invoice_id, _ in requested])
    for index, (invoice_id, _) in enumerate(requested):
        invoice = invoices.get(invoice_id)
        field = f"allocations.{index}.invoice_id"
        if invoice is None:
            raise Unprocessable("unknown invoice", field=field)
        if invoice.status == "void":
            raise Unprocessable("the invoice is void", field=field)
        if invoice.currency != payment.currency:
            raise Unprocessable(
                f"the invoice is in {invoice.currency}, the payment in {payment.currency}",
                field=field,
            )
    try:
        merged = check_allocations(
            requested,
            payment.amount_unapplied,
            {invoice_id: invoice.amount_due for invoice_id, invoice in invoices.items()},
        )
    except OverAllocation as error:
        raise Unprocessable(error.message, field=error.field) from None
    today = on or business_date(settings.timezone)
    apply(session, settings, payment, invoices, merged, reason=reason, on=today)
    fields: dict[str, Any] = {"match_rule": rule or reason}
    if evidence is not None:
        fields["match_evidence"] = audit.jsonable(evidence)
    after = bump_payment(session, payment.id, **fields)
    if auto_write_off and after["amount_unapplied"] == 0:
        from premium_billing.payments.writeoffs import write_off_locked

        for invoice_id in sorted(merged):
            fresh = session.scalar(
                select(Invoice)
                .where(Invoice.id == invoice_id)
                .execution_options(populate_existing=True)
            )
            assert fresh is not None
            if within_tolerance(
                fresh.amount_due,
                fresh.total,
                settings.writeoff_tolerance_abs,
                settings.writeoff_tolerance_pct,
            ):
                write_off_locked(
                    session,
                    settings,
                    fresh,
                    kind="tolerance",
                    reason="underpaid remainder within tolerance",
                    payment_id=payment.id,
                    on=today,
                )
    _finish(session, commit)
    log.info(
        "payment allocated",
        extra={
            "event": "payment_allocated",
            "payment_id": payment.id,
            "invoices": sorted(merged),
            "amount": sum(merged.values()),
            "reason": reason,
        },
    )
    return get_fresh(session, payment.id)


def get_fresh(session: Session, payment_id: int) -> Payment:
    payment = session.scalar(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    )
    if payment is None:
        raise NotFound("payment not found")
    return payment


# ----------------------------------------------------------------------------- undo


def net_allocations(session: Session, payment_id: int) -> dict[int, int]:
    """{invoice id: net amount allocated} for the payment, most recently allocated first."""
    rows = session.execute(
        select(Allocation.invoice_id, func.sum(Allocation.amount), func.max(Allocation.id))
        .where(Allocation.payment_id == payment_id)
        .group_by(Allocation.invoice_id)
        .having(func.sum(Allocation.amount) > 0)
        .order_by(func.max(Allocation.id).desc())
    ).all()
    return {int(invoice_id): int(total) for invoice_id, total, _ in rows}


def _unapply(
    session: Session,
    settings: Settings,
    payment: Payment,
    amounts: dict[int, int],
    *,
    reason: str,
    on: date,
) -> None:
    """Take allocated money back from invoices ({invoice id: amount > 0}) to the payment;
    the tolerance write-offs this payment caused on them are reversed too."""
    if not amounts:
        return
    lock_invoices(session, list(amounts))
    from premium_billing.payments.writeoffs import reverse_tolerance_write_offs

    reverse_tolerance_write_offs(session, settings, payment.id, list(amounts), on=on)
    entry = post(
        session,
        ledger.PAYMENT_UNALLOCATED,
        on,
        ledger.allocated(
            {i: -a for i, a in amounts.items()},
            payment.currency,
            payment.id,
            payment.policyholder_id,
        ),
    )
    session.add_all(
        Allocation(
            payment_id=payment.id,
            invoice_id=invoice_id,
            amount=-amount,
            reason=reason,
            entry_id=entry.id,
        )
        for invoice_id, amount in sorted(amounts.items())
    )
    session.flush()
    bump_payment(session, payment.id, allocated=-sum(amounts.values()))
    for invoice_id, amount in sorted(amounts.items()):
        bump_invoice(session, settings, invoice_id, paid=-amount)


def _forget_matched_payer(session: Session, payment: Payment, on: date) -> None:
    """An undone match also undoes the payer it identified: the money returns to suspense."""
    session.refresh(payment)
    if not payment.payer_from_match or payment.policyholder_id is None:
        return
    if payment.amount_unapplied > 0:
        post(
            session,
            ledger.PAYER_UNIDENTIFIED,
            on,
            ledger.payer_unidentified(
                payment.amount_unapplied, payment.currency, payment.id, payment.policyholder_id
            ),
            memo="match undone: payer unknown again",
        )
    payment.policyholder_id = None
    payment.payer_from_match = False
    session.flush()


def unallocate(
    session: Session,
    settings: Settings,
    payment_id: int,
    *,
    on: date | None = None,
    commit: bool = True,
) -> Payment:
    """Undo every allocation of the payment: the invoices re-open, the money is unapplied
    again (suspense if the match had named the payer), the match is cleared."""
    payment = lock_payment(session, payment_id)
    today = on or business_date(settings.timezone)
    _unapply(
        session, settings, payment, net_allocations(session, payment.id), reason="undo", on=today
    )
    _forget_matched_payer(session, payment, today)
    bump_payment(session, payment.id, match_rule=None, match_evidence=None)
    _finish(session, commit)
    log.info(
        "payment unallocated", extra={"event": "payment_unallocated", "payment_id": payment_id}
    )
    return get_fresh(session, payment_id)


# ----------------------------------------------------------------------------- refund, reverse


def _take_back(session: Session, payment_id: int, needed: int) -> dict[int, int]:
    """Which allocations a refund of `needed` undoes: the most recent first."""
    out: dict[int, int] = {}
    for invoice_id, net in net_allocations(session, payment_id).items():
        if needed == 0:
            break
        take = min(net, needed)
        out[invoice_id] = take
        needed -= take
    return out


def refund(
    session: Session,
    settings: Settings,
    payment_id: int,
    amount: int,
    *,
    reason: str | None = None,
    on: date | None = None,
    commit: bool = True,
) -> Payment:
    """Owe `amount` back to the payer (refunds payable): taken from the unapplied money
    first, then from the most recent allocations (their invoices re-open)."""
    payment = lock_payment(session, payment_id)
    if payment.status == "reversed":
        raise Conflict("a reversed payment cannot be refunded")
    refundable = payment.amount - payment.amount_refunded - payment.amount_reversed
    if amount <= 0:
        raise Unprocessable("must be greater than 0", field="amount")
    if amount > refundable:
        raise Unprocessable(
            f"{amount} is more than the {refundable} that can still be refunded", field="amount"
        )
    today = on or business_date(settings.timezone)
    if amount > payment.amount_unapplied:
        taken = _take_back(session, payment.id, amount - payment.amount_unapplied)
        _unapply(session, settings, payment, taken, reason="refund", on=today)
        session.refresh(payment)
    entry = post(
        session,
        ledger.PAYMENT_REFUNDED,
        today,
        ledger.refunded(amount, payment.currency, payment.id, payment.policyholder_id),
    )
    session.add(
        Refund(
            payment_id=payment.id,
            amount=amount,
            currency=payment.currency,
            status="pending",
            reason=reason,
            entry_id=entry.id,
        )
    )
    session.flush()
    bump_payment(session, payment.id, refunded=amount)
    _finish(session, commit)
    log.info(
        "payment refunded",
        extra={"event": "payment_refunded", "payment_id": payment_id, "amount": amount},
    )
    return get_fresh(session, payment_id)


def reverse(
    session: Session,
    settings: Settings,
    payment_id: int,
    *,
    on: date,
    reason: str | None = None,
    commit: bool = True,
) -> Payment:
    """A chargeback or a bank return: undo the allocations, then the money still held
    leaves the cash (or Stripe clearing) account again."""
    payment = lock_payment(session, payment_id)
    if payment.status == "reversed":
        raise Conflict("the payment is already reversed")
    _unapply(
        session, settings, payment, net_allocations(session, payment.id), reason="reversal", on=on
    )
    session.refresh(payment)
    held = payment.amount_unapplied
    if held > 0:
        post(
            session,
            ledger.PAYMENT_REVERSED,
            on,
            ledger.reversed_payment(
                held,
                payment.currency,
                ledger.cash_account(payment.source, payment.method),
                payment.id,
                payment.policyholder_id,
            ),
            memo=reason,
        )
    bump_payment(session, payment.id, reversed_amount=held, reversed_on=on)
    _finish(session, commit)
    log.info("payment reversed", extra={"event": "payment_reversed", "payment_id": payment_id})
    return get_fresh(session, payment_id)


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class PaymentView:
    payment: Payment
    allocations: list[dict[str, int]]
    refunds: list[Refund]
    write_offs: list[WriteOff]


def view(session: Session, payment: Payment) -> PaymentView:
    allocations = [
        {"invoice_id": invoice_id, "amount": amount}
        for invoice_id, amount in sorted(net_allocations(session, payment.id).items())
    ]
    refunds = list(
        session.scalars(select(Refund).where(Refund.payment_id == payment.id).order_by(Refund.id))
    )
    write_offs = list(
        session.scalars(
            select(WriteOff).where(WriteOff.payment_id == payment.id).order_by(WriteOff.id)
        )
    )
    return PaymentView(payment, allocations, refunds, write_offs)
