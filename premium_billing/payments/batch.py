"""Set-based posting: many payments received, or many matches applied, in a few statements.

The reconciler and the webhook drain post thousands of payments; one at a time that is ~35
SQL round trips each. Here a batch costs a constant number of statements: lock the payments
and invoices (id order: the one lock order of `services.payments`), check every plan against
the locked amounts with the same domain rules as `payments.allocate`, then write one journal
entry per kind for the batch (every leg tagged with its payment and invoice, so `ledger
check` sees each payment), the allocation and write-off rows, and the new amounts and
statuses (computed from the locked rows; the CHECK constraints still guard them), and one
audit row for the batch naming every allocation. A plan that no longer fits (an invoice paid
meanwhile, a payment reversed) is refused with its reason; the others post. Flushed, never
committed: the caller commits with its own bookkeeping (inbox row, suspense queue).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from premium_billing.audit import trail as audit
from premium_billing.config import Settings
from premium_billing.db.bulk import any_of, cached_plans, custom_plans, insert_rows, update_rows
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import OverAllocation, invoice_status, within_tolerance
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.ledger.rules import Posting
from premium_billing.payments import posting as payments
from premium_billing.payments.models import Allocation, Payment, WriteOff
from premium_billing.payments.rules import check_allocations, payment_status

log = logging.getLogger(__name__)

PAYABLE = ("open", "partially_paid")
INVOICES = Invoice.__table__
PAYMENTS = Payment.__table__
LINES = JournalLine.__table__


@dataclass(frozen=True)
class MatchPlan:
    """Allocate `allocations` [(invoice id, amount)] from a payment; then write off each
    (invoice id, amount) in `write_offs`, which must be exactly what the invoice has left
    due and within tolerance."""

    payment_id: int
    allocations: Sequence[tuple[int, int]]
    write_offs: Sequence[tuple[int, int]] = ()
    rule: str = "match"
    evidence: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Received:
    """A payment to record (see `payments.create_payment` for the fields)."""

    amount: int
    currency: str
    method: str
    received_on: date
    external_id: str | None = None
    payer_name: str | None = None
    reference: str | None = None
    policyholder_id: int | None = None
    match_evidence: Mapping[str, Any] | None = None


# ----------------------------------------------------------------------------- receive


def receive_many(
    session: Session,
    items: Sequence[Received],
    *,
    source: str,
    memo: str | None = None,
    cash_per_entry: bool = False,
) -> list[int]:
    """Record payments (unique (source, external id): a duplicate raises IntegrityError, so
    callers filter first or use a savepoint) with one `payment_received` entry per received
    date: cash (or Stripe clearing) debit and suspense or credit credit, per payment.

    `cash_per_entry`: the entry's cash debit is one untagged line per account and currency,
    the sum of its payments (as `invoice_issued` journals a batch's receivable), and only the
    suspense or credit leg is per payment: a quarter fewer rows for a bank statement.
    `ledger check` verifies such a debit against the payments whose `receipt_entry_id` is
    the entry."""
    if not items:
        return []
    days = sorted({item.received_on for item in items})
    entry_ids = session.scalars(
        insert(JournalEntry).returning(JournalEntry.id, sort_by_parameter_order=True),
        [{"kind": ledger.PAYMENT_RECEIVED, "occurred_on": day, "memo": memo} for day in days],
    ).all()
    entry_of = dict(zip(days, entry_ids, strict=True))
    ids = insert_rows(
        session,
        PAYMENTS,
        [
            {
                "source": source,
                "method": item.method,
                "external_id": item.external_id,
                "amount": item.amount,
                "currency": item.currency,
                "received_on": item.received_on,
                "payer_name": item.payer_name,
                "reference": item.reference,
                "policyholder_id": item.policyholder_id,
                "payer_from_match": False,
                "amount_allocated": 0,
                "amount_refunded": 0,
                "amount_reversed": 0,
                "amount_unapplied": item.amount,
                "status": "unapplied",
                "match_evidence": audit.jsonable(item.match_evidence)
                if item.match_evidence is not None
                else None,
                "receipt_entry_id": entry_of[item.received_on],
            }
            for item in items
        ],
        ids=True,
    )
    sums: dict[str, int] = defaultdict(int)
    for item in items:
        sums[item.currency] += item.amount
    if cash_per_entry:
        legs = _received_per_entry(ids, items, source, entry_of)
    else:
        legs = [
            _line(entry_of[item.received_on], leg)
            for payment_id, item in zip(ids, items, strict=True)
            for leg in ledger.payment_received(
                item.amount,
                item.currency,
                ledger.cash_account(source, item.method),
                payment_id,
                item.policyholder_id,
            )
        ]
    insert_rows(session, LINES, legs)
    audit.record(
        session,
        "create",
        "payments",
        None,
        after={
            "source": source,
            "ids": [ids[0], ids[-1]],
            "count": len(ids),
            "receipt_entry_ids": list(entry_ids),
            "received": dict(sorted(sums.items())),
        },
    )
    return list(ids)


def _received_per_entry(
    ids: Sequence[int], items: Sequence[Received], source: str, entry_of: Mapping[date, int]
) -> list[dict[str, Any]]:
    """The lines of `receive_many(cash_per_entry=True)`, entry by entry (so the balance
    trigger sums each entry once): its untagged cash debits, then a holding credit per
    payment."""
    cash: dict[int, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    held: dict[int, list[Posting]] = defaultdict(list)
    for payment_id, item in zip(ids, items, strict=True):
        entry_id = entry_of[item.received_on]
        cash[entry_id][(ledger.cash_account(source, item.method), item.currency)] += item.amount
        held[entry_id].append(
            Posting(
                ledger.holding_account(item.policyholder_id),
                item.currency,
                -item.amount,
                payment_id=payment_id,
                policyholder_id=item.policyholder_id,
            )
        )
    lines: list[dict[str, Any]] = []
    for entry_id in sorted(held):
        debits = [Posting(a, c, total) for (a, c), total in sorted(cash[entry_id].items())]
        lines.extend(_line(entry_id, leg) for leg in ledger.check_entry(debits + held[entry_id]))
    return lines


def _line(entry_id: int, leg: Posting) -> dict[str, Any]:
    return {
        "entry_id": entry_id,
        "account": leg.account,
        "currency": leg.currency,
        "amount": leg.amount,
        "invoice_id": leg.invoice_id,
        "payment_id": leg.payment_id,
        "policyholder_id": leg.policyholder_id,
    }


# ----------------------------------------------------------------------------- match


def _locked_payments(session: Session, ids: Sequence[int]) -> dict[int, Any]:
    stmt = (
        select(
            Payment.id,
            Payment.currency,
            Payment.amount,
            Payment.amount_allocated,
            Payment.amount_refunded,
            Payment.amount_reversed,
            Payment.amount_unapplied,
            Payment.policyholder_id,
            Payment.status,
            Payment.payer_from_match,
        )
        .where(any_of(session, Payment.id, sorted(set(ids))))
        .order_by(Payment.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    else:
        # SQLite: take the write lock first, so that what we read is what we update.
        session.execute(
            update(Payment).where(Payment.id.in_(sorted(set(ids)))).values(id=Payment.id)
        )
    return {row.id: row for row in session.execute(stmt)}


def _locked_invoices(session: Session, ids: Sequence[int]) -> dict[int, Any]:
    if not ids:
        return {}
    stmt = (
        select(
            Invoice.id,
            Invoice.currency,
            Invoice.status,
            Invoice.total,
            Invoice.amount_paid,
            Invoice.amount_written_off,
            Invoice.amount_due,
            Invoice.policyholder_id,
        )
        .where(any_of(session, Invoice.id, sorted(set(ids))))
        .order_by(Invoice.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return {row.id: row for row in session.execute(stmt)}


@dataclass
class _Payment:
    currency: str
    amount: int
    allocated: int
    refunded: int
    reversed: int
    unapplied: int
    holder: int | None
    status: str
    identified: bool = False  # payer named by this batch's match
    rule: str | None = None
    evidence: Any = None


@dataclass
class _Invoice:
    currency: str
    status: str
    total: int
    paid: int
    written: int
    due: int
    holder: int
    changed: bool = False


def _refusal(
    plan: MatchPlan, pay: _Payment | None, invoices: dict[int, _Invoice], settings: Settings
) -> str | None:
    """Why the plan cannot post against the current amounts (None: it can)."""
    if pay is None:
        return "unknown payment"
    if pay.status == "reversed":
        return "the payment is reversed"
    for invoice_id, _ in plan.allocations:
        inv = invoices.get(invoice_id)
        if inv is None:
            return f"unknown invoice inv_{invoice_id}"
        if inv.status not in PAYABLE:
            return f"invoice inv_{invoice_id} is {inv.status}"
        if inv.currency != pay.currency:
            return f"invoice inv_{invoice_id} is in {inv.currency}, the payment in {pay.currency}"
    try:
        merged = check_allocations(
            list(plan.allocations),
            pay.unapplied,
            {i: invoices[i].due for i, _ in plan.allocations},
        )
    except OverAllocation as error:
        return error.message
    for invoice_id, amount in plan.write_offs:
        inv = invoices.get(invoice_id)
        if inv is None or invoice_id not in merged:
            return f"write-off of inv_{invoice_id}, which the match does not pay"
        left = inv.due - merged[invoice_id]
        if left != amount or not within_tolerance(
            amount, inv.total, settings.writeoff_tolerance_abs, settings.writeoff_tolerance_pct
        ):
            return f"invoice inv_{invoice_id} changed: {left} left due, not written off"
    return None


def post_matches(
    session: Session,
    settings: Settings,
    plans: Sequence[MatchPlan],
    *,
    on: date,
    reason: str = "match",
    memo: str | None = None,
) -> dict[int, str]:
    """Post the plans (one per payment) in a few statements; returns the refused ones,
    {payment id: why}. Flushed, not committed."""
    if not plans:
        return {}
    custom_plans(session)
    payment_rows = _locked_payments(session, [p.payment_id for p in plans])
    invoice_rows = _locked_invoices(
        session, [i for p in plans for i, _ in (*p.allocations, *p.write_offs)]
    )
    pays = {
        r.id: _Payment(r.currency, r.amount, r.amount_allocated, r.amount_refunded,
                       r.amount_reversed, r.amount_unapplied, r.policyholder_id, r.status)
        for r in payment_rows.values()
    }  # fmt: skip
    invoices = {
        r.id: _Invoice(r.currency, r.status, r.total, r.amount_paid, r.amount_written_off,
                       r.amount_due, r.policyholder_id)
        for r in invoice_rows.values()
    }  # fmt: skip
    refused: dict[int, str] = {}
    matched_legs: list[Posting] = []
    allocated_legs: list[Posting] = []
    writeoff_legs: list[Posting] = []
    allocation_rows: list[tuple[str, int, int, int]] = []  # (entry kind, payment, invoice, amt)
    writeoff_rows: list[tuple[int, int, int]] = []  # (payment, invoice, amount)
    done: set[int] = set()
    for plan in plans:
        pay = pays.get(plan.payment_id)
        why = (
            "the payment is twice in the batch"
            if plan.payment_id in done
            else _refusal(plan, pay, invoices, settings)
        )
        if why is not None or pay is None:
            refused[plan.payment_id] = why or "unknown payment"
            continue
        done.add(plan.payment_id)
        merged: dict[int, int] = defaultdict(int)
        for invoice_id, amount in plan.allocations:
            merged[invoice_id] += amount
        total = sum(merged.values())
        if pay.holder is None:
            pay.holder = invoices[min(merged)].holder
            pay.identified = True
            kind = ledger.PAYMENT_MATCHED
            matched_legs.extend(
                ledger.matched(pay.unapplied, merged, pay.currency, plan.payment_id, pay.holder)
            )
        else:
            kind = ledger.PAYMENT_ALLOCATED
            allocated_legs.extend(
                ledger.allocated(merged, pay.currency, plan.payment_id, pay.holder)
            )
        pay.allocated += total
        pay.unapplied -= total
        pay.rule = plan.rule
        pay.evidence = plan.evidence
        for invoice_id, amount in sorted(merged.items()):
            inv = invoices[invoice_id]
            inv.paid += amount
            inv.due -= amount
            inv.changed = True
            allocation_rows.append((kind, plan.payment_id, invoice_id, amount))
        for invoice_id, amount in plan.write_offs:
            inv = invoices[invoice_id]
            inv.written += amount
            inv.due -= amount
            writeoff_legs.extend(ledger.written_off(amount, inv.currency, invoice_id, inv.holder))
            writeoff_rows.append((plan.payment_id, invoice_id, amount))
    if not done:
        return refused
    cached_plans(session)  # the COPYs: their foreign-key checks keep one plan
    entries = _entries(
        session,
        on,
        memo,
        {
            ledger.PAYMENT_MATCHED: matched_legs,
            ledger.PAYMENT_ALLOCATED: allocated_legs,
            ledger.WRITTEN_OFF: writeoff_legs,
        },
    )
    insert_rows(
        session,
        Allocation.__table__,
        [
            {"payment_id": p, "invoice_id": i, "amount": a, "reason": reason,
             "entry_id": entries[kind]}
            for kind, p, i, a in allocation_rows
        ],
    )  # fmt: skip
    if writeoff_rows:
        insert_rows(
            session,
            WriteOff.__table__,
            [
                {"invoice_id": i, "amount": a, "kind": "tolerance", "payment_id": p,
                 "reason": "short payment within tolerance",
                 "entry_id": entries[ledger.WRITTEN_OFF]}
                for p, i, a in writeoff_rows
            ],
        )  # fmt: skip
    custom_plans(session)
    _update_payments(session, {pid: pays[pid] for pid in sorted(done)}, payment_rows)
    _update_invoices(session, settings, invoices, invoice_rows)
    audit.record(
        session,
        "allocated",
        "payments",
        None,
        after={
            "reason": reason,
            "entry_ids": sorted(entries.values()),
            "allocations": [[f"pay_{p}", f"inv_{i}", a] for _, p, i, a in allocation_rows],
            "write_offs": [[f"pay_{p}", f"inv_{i}", a] for p, i, a in writeoff_rows],
        },
    )
    log.info(
        "matches posted",
        extra={"event": "matches_posted", "posted": len(done), "refused": len(refused)},
    )
    return refused


def _entries(
    session: Session, on: date, memo: str | None, legs_by_kind: dict[str, list[Posting]]
) -> dict[str, int]:
    """One balanced entry per kind that has legs; their lines in one insert."""
    kinds = [kind for kind, legs in legs_by_kind.items() if legs]
    for kind in kinds:
        ledger.check_entry(legs_by_kind[kind])
    ids = session.scalars(
        insert(JournalEntry).returning(JournalEntry.id, sort_by_parameter_order=True),
        [{"kind": kind, "occurred_on": on, "memo": memo} for kind in kinds],
    ).all()
    entries = dict(zip(kinds, ids, strict=True))
    insert_rows(
        session, LINES, [_line(entries[kind], leg) for kind in kinds for leg in legs_by_kind[kind]]
    )
    return entries


def _update_payments(session: Session, pays: dict[int, _Payment], before: dict[int, Any]) -> None:
    rows = []
    for pid, pay in pays.items():
        old = before[pid]
        delta = pay.allocated - old.amount_allocated
        rows.append(
            {
                "id": pid,
                "amount_allocated": delta,
                "amount_unapplied": -delta,
                "status": payment_status(
                    pay.amount, pay.allocated, pay.refunded, pay.reversed, reversed=False
                ),
                "policyholder_id": pay.holder,
                "payer_from_match": pay.identified or old.payer_from_match,
                "match_rule": pay.rule,
                "match_evidence": None if pay.evidence is None else audit.jsonable(pay.evidence),
            }
        )
    update_rows(
        session,
        PAYMENTS,
        rows,
        add=("amount_allocated", "amount_unapplied"),
        assign=("status", "policyholder_id", "payer_from_match", "match_rule", "match_evidence"),
    )
    _expire(session, Payment, pays)


def _update_invoices(
    session: Session, settings: Settings, invoices: dict[int, _Invoice], before: dict[int, Any]
) -> None:
    rows = []
    for iid, inv in sorted(invoices.items()):
        if not inv.changed:
            continue
        old = before[iid]
        paid, written = inv.paid - old.amount_paid, inv.written - old.amount_written_off
        rows.append(
            {
                "id": iid,
                "amount_paid": paid,
                "amount_written_off": written,
                "amount_due": -paid - written,
                "status": invoice_status(
                    inv.total, inv.paid, inv.written,
                    tolerance_abs=settings.writeoff_tolerance_abs,
                    tolerance_pct=settings.writeoff_tolerance_pct,
                ),
            }
        )  # fmt: skip
    update_rows(
        session,
        INVOICES,
        rows,
        add=("amount_paid", "amount_written_off", "amount_due"),
        assign=("status",),
    )
    _expire(session, Invoice, {row["id"]: None for row in rows})


def _expire(session: Session, model: type, ids: Mapping[int, Any]) -> None:
    """Loaded objects of these rows read the new amounts on next access."""
    for row_id in ids:
        payments.expire(session, model, row_id)
