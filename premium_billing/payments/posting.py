"""The posting engine: every money movement of a payment or an invoice goes through here.

Money received (`receive`), allocated to invoices (`post`, `allocate`: a manual match, a
reconciliation run's matches, a Stripe payment, credit applied at invoice issue), taken
back (`unallocate`, `refund`, `reverse`) and written off (a tolerance write-off in the same
posting, or by hand) is posted set-based by a `Batch`; a single posting is a batch of one
through the same code, so a payment's outcome does not depend on the road it came by:

- one lock order: the payments, then the invoices, each in id order (SELECT … FOR UPDATE on
  PostgreSQL; on SQLite the write lock is taken first, so what is read is what is updated);
- one validation (`payments.rules.refusal`: the API answers a refusal with its status and
  field, a batch reports its reason and posts the other plans);
- one tolerance rule (`payments.rules.tolerance_write_offs`, on `within_tolerance`): when a
  posting leaves its payment fully applied, an invoice it paid that is left with a remainder
  within tolerance is written off in the same posting (unless the plan says not to);
- one status rule (`invoicing.rules.invoice_status`, `payments.rules.payment_status`);
- one journal entry per kind and date per batch, each payment's legs of the one shape of
  its kind (`payments.rules.moved` for money reaching invoices or taken back: a holding leg
  per payment, a receivable leg per invoice; `ledger.rules` for the others), every leg
  tagged with its payment and invoice so that `ledger check` sees each;
- the amounts change by SQL increments (the CHECK constraints catch a lost update) and the
  statuses are computed from the locked rows;
- one audit row per batch (action "posted", entity "postings"), naming every payment,
  invoice and amount it moved (see `AUDIT_LAYOUT`); a row's before and after are the rows
  it names as the posting found and left them: before + these amounts = after.

Credit notes (`Batch.credit`: billed premium taken off an invoice, its total and amount due
fall; reversed by a negative one), refunds paid out (`Batch.pay_refund`: refunds payable →
Stripe clearing or the bank; `reopen_refund` when Stripe's payout fails) and unpaid refunds
taken back (`Batch.cancel_refund`) are posted by the same batch: a cancellation's
settlement is one batch (see `cancellations.settlement`).

Batches flush, never commit: the road functions commit unless `commit=False` (a caller
composing a bigger transaction, e.g. a manual match with its reconciliation bookkeeping).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.util import identity_key

from premium_billing.audit import trail as audit
from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.db.bulk import any_of, cached_plans, custom_plans, insert_rows, update_rows
from premium_billing.db.hooks import MONEY_MOVED, publish
from premium_billing.errors import Conflict, NotFound, Unprocessable
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import invoice_status
from premium_billing.ledger import journal
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.models import JournalEntry
from premium_billing.ledger.rules import Posting
from premium_billing.payments import rules
from premium_billing.payments.models import Allocation, InvoiceCredit, Payment, Refund, WriteOff
from premium_billing.payments.rules import Refusal, Tolerance, payment_status
from premium_billing.policies.models import Policyholder

log = logging.getLogger(__name__)

INVOICES = Invoice.__table__
PAYMENTS = Payment.__table__
TOLERANCE_REASON = "underpaid remainder within tolerance"

# The audit row of a batch lists, in the order posted, one `posting` per payment and invoice
# it moved (a payment with no invoice moved: invoice None; an invoice written off by hand:
# payment None): the amount allocated (negative: taken back) and written off (negative: a
# write-off reversed), and the payment's payer after the posting. Refunds and reversals are
# listed per payment. A receipt lists each payment received and its amount (and the total
# received per currency).
AUDIT_LAYOUT = {
    "posting": ["payment", "invoice", "allocated", "written_off", "policyholder"],
    "refund": ["payment", "amount"],
    "reversal": ["payment", "amount"],
    "received": ["payment", "amount"],
    "credit": ["invoice", "amount", "payment"],
    "refund_payout": ["refund", "amount", "status"],
}


# ----------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Plan:
    """Allocate `allocations` [(invoice id, amount)] from a payment.

    `rule` and `evidence` are recorded on the payment (None: left as they are). `write_off`:
    apply the tolerance rule (see the module doc). `write_offs`: the tolerance write-offs
    the plan's author expects [(invoice id, amount)]; a plan whose expectation is not what
    the rule gives is refused (None: no expectation). `on`: the entry date of this plan
    (default: the batch's). `reason`: the allocation rows' reason (default: the batch's)."""

    payment_id: int
    allocations: Sequence[tuple[int, int]]
    write_offs: Sequence[tuple[int, int]] | None = None
    rule: str | None = "match"
    evidence: Mapping[str, Any] | None = None
    write_off: bool = True
    on: date | None = None


@dataclass(frozen=True)
class Received:
    """A payment to record: see `receive`."""

    amount: int
    currency: str
    method: str
    received_on: date
    external_id: str | None = None
    payer_name: str | None = None
    reference: str | None = None
    policyholder_id: int | None = None
    match_rule: str | None = None
    match_evidence: Mapping[str, Any] | None = None


# ----------------------------------------------------------------------------- row helpers


def expire(session: Session, model: type, row_id: int) -> None:
    """Expire the loaded object of this row, if any (it was changed by SQL)."""
    obj = session.identity_map.get(identity_key(model, row_id))
    if obj is not None:
        session.expire(obj)


def finish(session: Session, commit: bool) -> None:
    """Commit (or only flush when the caller composes a bigger transaction). A CHECK that
    caught what a racing transaction changed meanwhile is a Conflict, nothing posted."""
    if not commit:
        session.flush()
        return
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise Conflict(
            "the payment or invoice changed meanwhile; nothing was posted, try again"
        ) from error


def raise_refusal(why: Refusal) -> None:
    """A refusal as the API's error: 404, 409 or 422 naming the field."""
    if why.kind == "not_found":
        raise NotFound("payment not found" if why.reason == "unknown payment" else why.reason)
    if why.kind == "conflict":
        raise Conflict(why.reason, field=why.field)
    raise Unprocessable(why.reason, field=why.field)


def get_payment(session: Session, payment_id: int) -> Payment:
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound("payment not found")
    return payment


def get_fresh(session: Session, payment_id: int) -> Payment:
    payment = session.scalar(
        select(Payment).where(Payment.id == payment_id).execution_options(populate_existing=True)
    )
    if payment is None:
        raise NotFound("payment not found")
    return payment


def net_allocations(session: Session, payment_id: int) -> dict[int, int]:
    """{invoice id: net amount allocated} for the payment, most recently allocated first."""
    return _net_allocations(session, [payment_id]).get(payment_id, {})


def _net_allocations(session: Session, payment_ids: Sequence[int]) -> dict[int, dict[int, int]]:
    rows = session.execute(
        select(
            Allocation.payment_id,
            Allocation.invoice_id,
            func.sum(Allocation.amount),
            func.max(Allocation.id),
        )
        .where(Allocation.payment_id.in_(list(payment_ids)))
        .group_by(Allocation.payment_id, Allocation.invoice_id)
        .having(func.sum(Allocation.amount) > 0)
        .order_by(Allocation.payment_id, func.max(Allocation.id).desc())
    ).all()
    out: dict[int, dict[int, int]] = defaultdict(dict)
    for payment_id, invoice_id, total, _ in rows:
        out[int(payment_id)][int(invoice_id)] = int(total)
    return out


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


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# ----------------------------------------------------------------------------- receive


def receive(
    session: Session,
    items: Sequence[Received],
    *,
    source: str,
    memo: str | None = None,
    cash_per_entry: bool = False,
) -> list[int]:
    """Record payments, set-based: the rows and one `payment_received` entry per received
    date (cash or Stripe clearing debit, suspense or the payer's credit credit, per payment),
    one audit row. Returns their ids, in order. Flushed, not committed.

    (source, external id) is unique: a duplicate raises (IntegrityError, or the driver's
    unique violation on PostgreSQL), so callers filter first or use a savepoint.

    `cash_per_entry` (bank statements): the entry's cash debit is one untagged line per
    account and currency, the sum of its payments (as `invoice_issued` journals a batch's
    receivable); only the holding leg is per payment. `ledger check` verifies such a debit
    against the payments whose `receipt_entry_id` is the entry.

    The same rows, built ahead with reserved ids (a statement import builds a batch's while
    the one before is written): `prepare_receipts`, then `record_receipts`."""
    if not items:
        return []
    keys = _receipt_keys(items)
    entries = journal.open_entries(session, keys, memo=memo)
    entry_of = {day: entry_id for (_kind, day), entry_id in entries.items()}
    ids = insert_rows(session, PAYMENTS, _payment_rows(items, source, entry_of), ids=True)
    journal.add_lines(
        session, _receipt_lines(ids, items, source, entry_of, cash_per_entry), entries
    )
    audit.record(
        session, "posted", "postings", None, after=_receipt_audit(ids, items, source, memo, entries)
    )
    return list(ids)


@dataclass(frozen=True)
class Receipts:
    """Payments to record with every row built, their ids and their entries' reserved
    (`prepare_receipts`); `record_receipts` writes them as `receive` would have."""

    entries: dict[tuple[str, date], int]
    payments: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    audit: dict[str, Any]
    memo: str | None

    @property
    def ids(self) -> list[int]:
        return [row["id"] for row in self.payments]


def prepare_receipts(
    items: Sequence[Received],
    *,
    source: str,
    memo: str | None = None,
    cash_per_entry: bool = False,
    reserve: Callable[[Table, int], list[int]],
) -> Receipts:
    """`receive`'s rows for `items`, their ids reserved by `reserve(table, n)` (e.g.
    `db.bulk.reserve_ids` on a connection of the caller's): the payments', and one entry's
    per received date."""
    keys = _receipt_keys(items)
    entries = dict(zip(keys, reserve(JournalEntry.__table__, len(keys)), strict=True))
    payment_ids = reserve(PAYMENTS, len(items))
    entry_of = {day: entry_id for (_kind, day), entry_id in entries.items()}
    rows = [
        {"id": payment_id, **row}
        for payment_id, row in zip(payment_ids, _payment_rows(items, source, entry_of), strict=True)
    ]
    return Receipts(
        entries,
        rows,
        _receipt_lines(payment_ids, items, source, entry_of, cash_per_entry),
        _receipt_audit(payment_ids, items, source, memo, entries),
        memo,
    )


def record_receipts(session: Session, receipts: Receipts) -> list[int]:
    """Write what `prepare_receipts` built (flushed, not committed); the payments' ids."""
    if not receipts.payments:
        return []
    entries = receipts.entries
    journal.open_entries(session, list(entries), memo=receipts.memo, ids=list(entries.values()))
    insert_rows(session, PAYMENTS, receipts.payments)
    journal.add_lines(session, receipts.lines, entries)
    audit.record(session, "posted", "postings", None, after=receipts.audit)
    return receipts.ids


def _receipt_keys(items: Sequence[Received]) -> list[tuple[str, date]]:
    return [(ledger.PAYMENT_RECEIVED, day) for day in sorted({i.received_on for i in items})]


def _payment_rows(
    items: Sequence[Received], source: str, entry_of: Mapping[date, int]
) -> list[dict[str, Any]]:
    return [
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
            "match_rule": item.match_rule,
            "match_evidence": audit.jsonable(item.match_evidence)
            if item.match_evidence is not None
            else None,
            "receipt_entry_id": entry_of[item.received_on],
        }
        for item in items
    ]


def _receipt_lines(
    ids: Sequence[int],
    items: Sequence[Received],
    source: str,
    entry_of: Mapping[date, int],
    cash_per_entry: bool,
) -> list[dict[str, Any]]:
    if cash_per_entry:
        return _received_per_entry(ids, items, source, entry_of)
    return [
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


def _receipt_audit(
    ids: Sequence[int],
    items: Sequence[Received],
    source: str,
    memo: str | None,
    entries: Mapping[tuple[str, date], int],
) -> dict[str, Any]:
    received: dict[str, int] = defaultdict(int)
    for item in items:
        received[item.currency] += item.amount
    return {
        "reason": "received",
        "source": source,
        "memo": memo,
        "entries": [[kind, day, entry_id] for (kind, day), entry_id in entries.items()],
        "received": dict(sorted(received.items())),
        "layout": AUDIT_LAYOUT["received"],
        "postings": [[f"pay_{pid}", item.amount] for pid, item in zip(ids, items, strict=True)],
    }


def _received_per_entry(
    ids: Sequence[int], items: Sequence[Received], source: str, entry_of: Mapping[date, int]
) -> list[dict[str, Any]]:
    """The lines of `receive(cash_per_entry=True)`, entry by entry (so the balance trigger
    sums each entry once): its untagged cash debits, then a holding credit per payment."""
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


def _duplicate_external_id(error: BaseException) -> bool:
    orig = getattr(error, "orig", error)
    diag = getattr(orig, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return bool(diag.constraint_name == "uq_payments_source_external_id")
    return "payments.source" in str(orig) or "uq_payments_source_external_id" in str(orig)


def create_payment(
    session: Session,
    data: dict[str, Any],
    *,
    source: str = "manual",
    commit: bool = True,
) -> Payment:
    """Record one payment (`receive` of one): its row and `payment_received` entry (cash or
    Stripe clearing → suspense, or the payer's credit when the policyholder is known).

    `data`: amount, currency, method, received_on, and optionally reference, payer_name,
    external_id, policyholder_id, match_rule, match_evidence. A second payment with the same
    (source, external_id) is a Conflict; an unknown policyholder Unprocessable."""
    holder_id = data.get("policyholder_id")
    if holder_id is not None and session.get(Policyholder, holder_id) is None:
        raise Unprocessable("unknown policyholder", field="policyholder_id")
    external_id = data.get("external_id")
    if external_id is not None and session.scalar(
        select(Payment.id).where(Payment.source == source, Payment.external_id == external_id)
    ):
        raise Conflict("a payment with this external_id already exists", field="external_id")
    item = Received(
        amount=data["amount"],
        currency=data["currency"],
        method=data["method"],
        received_on=data["received_on"],
        external_id=external_id,
        payer_name=data.get("payer_name"),
        reference=data.get("reference"),
        policyholder_id=holder_id,
        match_rule=data.get("match_rule"),
        match_evidence=data.get("match_evidence"),
    )
    try:
        (payment_id,) = receive(session, [item], source=source)
        finish(session, commit)
    except Exception as error:
        if not _duplicate_external_id(error):
            raise
        session.rollback()
        raise Conflict(
            "a payment with this external_id already exists", field="external_id"
        ) from None
    log.info(
        "payment received",
        extra={
            "event": "payment_received",
            "payment_id": payment_id,
            "amount": item.amount,
            "currency": item.currency,
            "source": source,
        },
    )
    return get_fresh(session, payment_id)


# ----------------------------------------------------------------------------- the batch

_KEEP: Any = object()  # a match field the batch leaves as it is
# allocated, refunded, reversed, unapplied, policyholder, payer from match, status, reversed on
_State = tuple[int, int, int, int, int | None, bool, str, date | None]


@dataclass
class PaymentState:
    """A locked payment as the batch changes it."""

    id: int
    source: str
    method: str
    currency: str
    amount: int
    allocated: int
    refunded: int
    reversed: int
    unapplied: int
    holder: int | None
    status: str
    from_match: bool
    reversed_on: date | None
    rule: Any = _KEEP
    evidence: Any = _KEEP
    start: _State = (0, 0, 0, 0, None, False, "", None)

    def snapshot(self) -> _State:
        return (self.allocated, self.refunded, self.reversed, self.unapplied, self.holder,
                self.from_match, self.status, self.reversed_on)  # fmt: skip


@dataclass
class InvoiceState:
    """A locked invoice as the batch changes it."""

    id: int
    currency: str
    status: str
    total: int
    paid: int
    written: int
    due: int
    holder: int
    start: tuple[int, int, int, str] = (0, 0, 0, "")
    credited: int = 0  # premium taken off by credit notes (`total` is net of it)
    credited_start: int = 0


@dataclass(slots=True)
class _Element:
    """What one payment's postings in the batch moved (its audit lines)."""

    payment: PaymentState | None
    invoices: dict[int, list[int]]  # invoice id → [allocated, written off]
    refunded: int = 0
    reversed: int = 0


class Batch:
    """One posting: lock, then allocate / take back / refund / reverse / write off in memory
    (each checked against the locked, current amounts), then `write` everything in a few
    statements. See the module doc."""

    def __init__(
        self,
        session: Session,
        settings: Settings,
        *,
        on: date,
        reason: str,
        memo: str | None = None,
        plans: bool = False,
    ) -> None:
        """`plans`: plan the batch's statements for their parameters (PostgreSQL, see
        `db.bulk.custom_plans`: what a batch of thousands needs, in a transaction that grows
        its tables); False (a posting of a few rows) leaves the transaction's plan mode
        alone. Either way the same statements post the same rows."""
        self.session = session
        self.settings = settings
        self.on = on
        self.reason = reason
        self.memo = memo
        self.tolerance = Tolerance(settings.writeoff_tolerance_abs, settings.writeoff_tolerance_pct)
        self.payments: dict[int, PaymentState] = {}
        self.invoices: dict[int, InvoiceState] = {}
        self._locked_any = False
        self._plans = plans
        self._planned = not plans
        self._legs: dict[tuple[str, date], list[Posting]] = {}
        self._allocations: list[tuple[tuple[str, date], int, int, int, str]] = []
        self._write_offs: list[tuple[tuple[str, date], int, int, str, str | None,
                                     int | None, int | None]] = []  # fmt: skip
        self._refunds: list[tuple[tuple[str, date], int, int, str, str, str | None]] = []
        self._refund_columns: list[dict[str, Any]] = []  # each refund's other columns
        self._credits: list[tuple[tuple[str, date], dict[str, Any]]] = []
        self._refund_updates: list[tuple[tuple[str, date] | None, int, dict[str, Any]]] = []
        self._audit_credits: list[list[Any]] = []
        self._audit_payouts: list[list[Any]] = []
        self.refund_ids: list[int] = []  # the refunds the batch owed, in order (after write)
        self._elements: list[_Element] = []
        self._element_of: dict[int, _Element] = {}
        self._allocated_in_batch: set[int] = set()
        self._standing: dict[int, list[tuple[int, int, int]]] = {}  # payment → write-offs

    # ---------------------------------------------------------------- locking

    def _write_lock(self, table: Any, ids: Sequence[int]) -> None:
        if not self._planned:
            custom_plans(self.session)  # the locks' and updates' statements: see db.bulk
            self._planned = True
        # SQLite: take the write lock first, so that what we read is what we update.
        if not self._locked_any and not _is_pg(self.session):
            self.session.execute(
                update(table).where(table.c.id.in_(list(ids))).values(id=table.c.id)
            )
        self._locked_any = True

    def lock_payments(self, ids: Iterable[int]) -> dict[int, PaymentState]:
        """Lock the payments (id order; before any invoice) and read their amounts."""
        wanted = sorted(set(ids) - set(self.payments))
        if not wanted:
            return self.payments
        assert not self.invoices, "payments are locked before invoices"
        self._write_lock(PAYMENTS, wanted)
        stmt = (
            select(
                Payment.id, Payment.source, Payment.method, Payment.currency, Payment.amount,
                Payment.amount_allocated, Payment.amount_refunded, Payment.amount_reversed,
                Payment.amount_unapplied, Payment.policyholder_id, Payment.status,
                Payment.payer_from_match, Payment.reversed_on,
            )
            .where(any_of(self.session, Payment.id, wanted))
            .order_by(Payment.id)
        )  # fmt: skip
        if _is_pg(self.session):
            stmt = stmt.with_for_update()
        for r in self.session.execute(stmt):
            pay = PaymentState(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                       bool(r[11]), r[12])  # fmt: skip
            pay.start = pay.snapshot()
            self.payments[pay.id] = pay
        return self.payments

    def lock_invoices(self, ids: Iterable[int]) -> dict[int, InvoiceState]:
        """Lock the invoices (id order; after the payments) and read their amounts."""
        wanted = sorted(set(ids) - set(self.invoices))
        if not wanted:
            return self.invoices
        self._write_lock(INVOICES, wanted)
        stmt = (
            select(
                Invoice.id, Invoice.currency, Invoice.status, Invoice.total, Invoice.amount_paid,
                Invoice.amount_written_off, Invoice.amount_due, Invoice.policyholder_id,
                Invoice.amount_credited,
            )
            .where(any_of(self.session, Invoice.id, wanted))
            .order_by(Invoice.id)
        )  # fmt: skip
        if _is_pg(self.session):
            stmt = stmt.with_for_update()
        for r in self.session.execute(stmt):
            inv = InvoiceState(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7])
            inv.start = (inv.paid, inv.written, inv.due, inv.status)
            inv.credited = inv.credited_start = int(r[8] or 0)
            self.invoices[inv.id] = inv
        return self.invoices

    def _load_standing_write_offs(self, payment_id: int) -> list[tuple[int, int, int]]:
        """The tolerance write-offs this payment caused that are not reversed:
        [(write-off id, invoice id, amount)]."""
        found = self._standing.get(payment_id)
        if found is None:
            reversal = aliased(WriteOff)
            found = self._standing[payment_id] = [
                (int(i), int(inv), int(a))
                for i, inv, a in self.session.execute(
                    select(WriteOff.id, WriteOff.invoice_id, WriteOff.amount)
                    .outerjoin(reversal, reversal.reverses_id == WriteOff.id)
                    .where(
                        WriteOff.payment_id == payment_id,
                        WriteOff.kind == "tolerance",
                        reversal.id.is_(None),
                    )
                    .order_by(WriteOff.id)
                )
            ]
        return found

    # ---------------------------------------------------------------- bookkeeping

    def _element(self, pay: PaymentState | None) -> _Element:
        if pay is not None and pay.id in self._element_of:
            return self._element_of[pay.id]
        element = _Element(pay, {})
        self._elements.append(element)
        if pay is not None:
            self._element_of[pay.id] = element
        return element

    def _moved(self, element: _Element, invoice_id: int) -> list[int]:
        found = element.invoices.get(invoice_id)
        if found is None:
            found = element.invoices[invoice_id] = [0, 0]
        return found

    def _legs_of(self, kind: str, on: date | None) -> list[Posting]:
        return self._legs.setdefault((kind, on or self.on), [])

    def _set_invoice(self, inv: InvoiceState, paid: int = 0, written: int = 0) -> None:
        inv.paid += paid
        inv.written += written
        inv.due -= paid + written
        inv.status = invoice_status(
            inv.total,
            inv.paid,
            inv.written,
            void=inv.status == "void",
            tolerance_abs=self.tolerance.absolute,
            tolerance_pct=self.tolerance.percent,
            credited=inv.credited,
        )

    def _set_payment(self, pay: PaymentState) -> None:
        pay.status = payment_status(
            pay.amount, pay.allocated, pay.refunded, pay.reversed,
            reversed=pay.reversed_on is not None,
        )  # fmt: skip

    # ---------------------------------------------------------------- movements

    def allocate(self, plan: Plan) -> Refusal | None:
        """Post the plan if it fits the current amounts; else its refusal (nothing posted)."""
        if plan.payment_id in self._allocated_in_batch:
            return Refusal("the payment is twice in the batch")
        pay = self.payments.get(plan.payment_id)
        why = rules.refusal(
            plan.allocations,
            pay,
            self.invoices,
            self.tolerance,
            write_off=plan.write_off,
            expected_write_offs=plan.write_offs,
        )
        if why is not None or pay is None:
            return why or Refusal("unknown payment", kind="not_found")
        self._allocated_in_batch.add(pay.id)
        merged: dict[int, int] = {}
        for invoice_id, amount in plan.allocations:
            merged[invoice_id] = merged.get(invoice_id, 0) + amount
        element = self._element(pay)
        if plan.rule is not None:
            pay.rule = plan.rule
            if plan.evidence is not None:
                pay.evidence = plan.evidence
        reason = self.reason
        holder_before = pay.holder
        if pay.holder is None:  # the match names the payer
            pay.holder = self.invoices[min(merged)].holder
            pay.from_match = True
        kind = ledger.CREDIT_APPLIED if reason == "credit" else ledger.PAYMENT_ALLOCATED
        key = (kind, plan.on or self.on)
        self._legs_of(*key).extend(
            rules.moved(
                merged, pay.currency, pay.id, unapplied=pay.unapplied,
                holder_before=holder_before, holder_after=pay.holder,
            )
        )  # fmt: skip
        total = sum(merged.values())
        pay.allocated += total
        pay.unapplied -= total
        for invoice_id, amount in sorted(merged.items()):
            inv = self.invoices[invoice_id]
            self._moved(element, invoice_id)[0] += amount
            self._allocations.append((key, pay.id, invoice_id, amount, reason))
            self._set_invoice(inv, amount, 0)
        self._set_payment(pay)
        if plan.write_off and pay.unapplied == 0:
            left = {i: (self.invoices[i].due, self.invoices[i].total) for i in merged}
            for invoice_id, _ in rules.tolerance_write_offs(pay.unapplied, left, self.tolerance):
                self._write_off(
                    self.invoices[invoice_id], "tolerance", TOLERANCE_REASON, pay, plan.on
                )
        return None

    def _write_off(
        self,
        inv: InvoiceState,
        kind: str,
        reason: str | None,
        pay: PaymentState | None,
        on: date | None,
    ) -> int:
        amount = inv.due
        key = (ledger.WRITTEN_OFF, on or self.on)
        self._legs_of(*key).extend(ledger.written_off(amount, inv.currency, inv.id, inv.holder))
        self._write_offs.append(
            (key, inv.id, amount, kind, reason, None if pay is None else pay.id, None)
        )
        self._moved(self._element(pay), inv.id)[1] += amount
        self._set_invoice(inv, written=amount)
        return amount

    def write_off(self, invoice_id: int, reason: str | None) -> Refusal | None:
        """Write off what is still due on an invoice, by hand (kind manual)."""
        inv = self.invoices.get(invoice_id)
        if inv is None:
            return Refusal("invoice not found", kind="not_found")
        why = rules.write_off_refusal(inv.status, inv.due)
        if why is not None:
            return why
        self._write_off(inv, "manual", reason, None, None)
        return None

    def take_back(
        self, payment_id: int, amounts: Mapping[int, int], *, reason: str, forget_payer: bool
    ) -> None:
        """Take allocated money back from invoices ({invoice id: amount > 0}, locked) to the
        payment; the tolerance write-offs the payment caused on them are reversed too. With
        `forget_payer`, a payer that a match named is forgotten: the money returns to
        suspense."""
        pay = self.payments[payment_id]
        element = self._element(pay)
        if amounts:
            for write_off_id, invoice_id, amount in self._load_standing_write_offs(pay.id):
                if invoice_id not in amounts:
                    continue
                inv = self.invoices[invoice_id]
                key = (ledger.WRITEOFF_REVERSED, self.on)
                self._legs_of(*key).extend(
                    ledger.written_off(-amount, inv.currency, inv.id, inv.holder)
                )
                self._write_offs.append(
                    (key, inv.id, -amount, "reversal", "allocation undone", pay.id, write_off_id)
                )
                self._moved(element, inv.id)[1] -= amount
                self._set_invoice(inv, written=-amount)
            self._standing[pay.id] = [w for w in self._standing[pay.id] if w[1] not in amounts]
        holder_after = pay.holder
        if forget_payer and pay.from_match:
            holder_after = None
        back = {invoice_id: -amount for invoice_id, amount in amounts.items()}
        key = (ledger.PAYMENT_UNALLOCATED, self.on)
        self._legs_of(*key).extend(
            rules.moved(
                back, pay.currency, pay.id, unapplied=pay.unapplied,
                holder_before=pay.holder, holder_after=holder_after,
            )
        )  # fmt: skip
        for invoice_id, amount in sorted(amounts.items()):
            inv = self.invoices[invoice_id]
            self._allocations.append((key, pay.id, invoice_id, -amount, reason))
            self._moved(element, invoice_id)[0] -= amount
            self._set_invoice(inv, paid=-amount)
        total = sum(amounts.values())
        pay.allocated -= total
        pay.unapplied += total
        if holder_after is None and pay.holder is not None:
            pay.holder = None
            pay.from_match = False
        self._set_payment(pay)

    def clear_match(self, payment_id: int) -> None:
        pay = self.payments[payment_id]
        pay.rule = pay.evidence = None
        self._element(pay)

    def refund(
        self, payment_id: int, amount: int, allocations: Mapping[int, int], *,
        reason: str | None, status: str = "pending", kind: str = "manual",
        cancellation_id: int | None = None,
    ) -> None:  # fmt: skip
        """Owe `amount` back to the payer (refunds payable): from the unapplied money first,
        then from `allocations` (most recent first; their invoices locked). The refund is
        paid back the way the money came (`rules.refund_channel`); `succeeded` (Stripe
        already paid it out): paid out in the same batch."""
        pay = self.payments[payment_id]
        if amount > pay.unapplied:
            self.take_back(
                pay.id, take_back_plan(allocations, amount - pay.unapplied),
                reason="refund", forget_payer=False,
            )  # fmt: skip
        key = (ledger.PAYMENT_REFUNDED, self.on)
        self._legs_of(*key).extend(ledger.refunded(amount, pay.currency, pay.id, pay.holder))
        self._refunds.append((key, pay.id, amount, pay.currency, status, reason))
        self._owed(pay, amount, status, kind, cancellation_id)
        pay.refunded += amount
        pay.unapplied -= amount
        self._element(pay).refunded += amount
        self._set_payment(pay)

    def refund_reversed(self, payment_id: int, amount: int, *, reason: str, status: str) -> int:
        """A refund learnt after a chargeback reversed the payment: that much of the reversal
        was in fact a refund (the result is the same as refund-then-reverse)."""
        pay = self.payments[payment_id]
        amount = min(amount, pay.reversed)
        if amount <= 0:
            return 0
        cash = ledger.cash_account(pay.source, pay.method)
        self._legs_of(ledger.PAYMENT_REVERSED, None).extend(
            ledger.reversed_payment(-amount, pay.currency, cash, pay.id, pay.holder)
        )
        key = (ledger.PAYMENT_REFUNDED, self.on)
        self._legs_of(*key).extend(ledger.refunded(amount, pay.currency, pay.id, pay.holder))
        self._refunds.append((key, pay.id, amount, pay.currency, status, reason))
        self._owed(pay, amount, status, "manual", None)
        pay.refunded += amount
        pay.reversed -= amount
        element = self._element(pay)
        element.refunded += amount
        element.reversed -= amount
        self._set_payment(pay)
        return amount

    def _owed(
        self, pay: PaymentState, amount: int, status: str, kind: str, cancellation_id: int | None
    ) -> None:
        """The other columns of a refund row; a refund Stripe already paid out is paid out in
        the same batch (refunds payable → Stripe clearing)."""
        columns: dict[str, Any] = {
            "kind": kind,
            "channel": rules.refund_channel(pay.source, pay.method),
            "policyholder_id": pay.holder,
            "cancellation_id": cancellation_id,
            "paid_on": None,
            "paid_entry_id": None,
        }
        if status == "succeeded":
            key = (ledger.REFUND_PAID, self.on)
            cash = ledger.cash_account(pay.source, pay.method)
            self._legs_of(*key).extend(
                ledger.refund_paid(amount, pay.currency, cash, pay.id, pay.holder)
            )
            columns["paid_on"] = self.on
            columns["paid_entry_id"] = key
            self._audit_payouts.append([None, amount, status])
        self._refund_columns.append(columns)

    def credit(
        self,
        invoice_id: int,
        amount: int,
        *,
        kind: str,
        reason: str | None,
        cancellation_id: int | None = None,
        endorsement_id: int | None = None,
        payment_id: int | None = None,
        reverses_id: int | None = None,
    ) -> None:
        """A credit note: take `amount` of billed premium off a (locked) invoice — its total
        and amount due fall (premium billed debit, receivable credit); credited down to
        nothing with nothing paid, it is void. A negative amount reverses a credit note
        (`reverses_id`): the invoice is billed that much again. The caller checks the
        amount against the invoice (`cancellations.rules`); a CHECK refuses a total below
        what is paid."""
        inv = self.invoices[invoice_id]
        kind_of_entry = ledger.INVOICE_CREDITED if amount > 0 else ledger.INVOICE_CREDIT_REVERSED
        key = (kind_of_entry, self.on)
        self._legs_of(*key).extend(
            ledger.invoice_credited(amount, inv.currency, inv.id, inv.holder)
        )
        self._credits.append(
            (
                key,
                {
                    "invoice_id": inv.id, "amount": amount, "kind": kind, "reason": reason,
                    "cancellation_id": cancellation_id, "endorsement_id": endorsement_id,
                    "payment_id": payment_id, "reverses_id": reverses_id,
                    "credited_on": self.on,
                },
            )
        )  # fmt: skip
        self._audit_credits.append(
            [f"inv_{inv.id}", amount, None if payment_id is None else f"pay_{payment_id}"]
        )
        inv.total -= amount
        inv.credited += amount
        inv.due -= amount
        inv.status = invoice_status(
            inv.total, inv.paid, inv.written,
            tolerance_abs=self.tolerance.absolute, tolerance_pct=self.tolerance.percent,
            credited=inv.credited,
        )  # fmt: skip

    def cancel_refund(self, refund_id: int, payment_id: int, amount: int, on: date) -> None:
        """An unpaid refund taken back (a reinstatement): the money is the (locked) payment's
        again, unapplied (the payer's credit), and the refund is `cancelled`."""
        pay = self.payments[payment_id]
        key = (ledger.REFUND_CANCELLED, self.on)
        self._legs_of(*key).extend(
            ledger.refund_cancelled(amount, pay.currency, pay.id, pay.holder)
        )
        pay.refunded -= amount
        pay.unapplied += amount
        self._element(pay).refunded -= amount
        self._set_payment(pay)
        self._refund_updates.append((None, refund_id, {"status": "cancelled", "cancelled_on": on}))
        self._audit_payouts.append([f"re_{refund_id}", amount, "cancelled"])

    def pay_refund(
        self,
        refund_id: int,
        payment_id: int,
        amount: int,
        currency: str,
        cash: str,
        holder: int | None,
        *,
        on: date,
        columns: Mapping[str, Any],
    ) -> None:
        """A refund paid out (Stripe's webhook, or finance by check or transfer): refunds
        payable → `cash` (Stripe clearing or the bank) on `on`. `columns`: what else the
        refund row records (status `succeeded`, method, reference)."""
        key = (ledger.REFUND_PAID, on)
        self._legs_of(*key).extend(ledger.refund_paid(amount, currency, cash, payment_id, holder))
        values = {**columns, "paid_on": on}
        self._refund_updates.append((key, refund_id, values))
        self._audit_payouts.append([f"re_{refund_id}", amount, values.get("status")])

    def reopen_refund(
        self,
        refund_id: int,
        payment_id: int,
        amount: int,
        currency: str,
        cash: str,
        holder: int | None,
        *,
        columns: Mapping[str, Any],
    ) -> None:
        """A refund paid out whose payout failed (Stripe's refund.failed): the money is back
        (Stripe clearing or the bank → refunds payable), the refund owed again."""
        key = (ledger.REFUND_REOPENED, self.on)
        self._legs_of(*key).extend(ledger.refund_paid(-amount, currency, cash, payment_id, holder))
        self._refund_updates.append((None, refund_id, dict(columns)))
        self._audit_payouts.append([f"re_{refund_id}", -amount, columns.get("status")])

    def reverse(self, payment_id: int, allocations: Mapping[int, int]) -> None:
        """A chargeback or a bank return: take back every allocation (their invoices locked),
        then the money still held leaves the cash (or Stripe clearing) account again."""
        pay = self.payments[payment_id]
        self.take_back(pay.id, allocations, reason="reversal", forget_payer=False)
        held = pay.unapplied
        if held > 0:
            cash = ledger.cash_account(pay.source, pay.method)
            self._legs_of(ledger.PAYMENT_REVERSED, None).extend(
                ledger.reversed_payment(held, pay.currency, cash, pay.id, pay.holder)
            )
        pay.reversed += held
        pay.unapplied -= held
        pay.reversed_on = self.on
        self._element(pay).reversed += held
        self._set_payment(pay)

    # ---------------------------------------------------------------- writing

    def write(self) -> None:
        """Write what the batch did: entries and lines, allocation, write-off and refund
        rows, the payments' and invoices' new amounts and statuses, one audit row."""
        if not (self._elements or self._credits or self._refund_updates):
            return
        session = self.session
        if self._plans:
            cached_plans(session)  # the COPYs: their foreign-key checks keep one plan
        checked = {key: ledger.check_entry(legs) for key, legs in self._legs.items()}
        keys = [key for key, legs in checked.items() if legs]
        entries = journal.open_entries(session, keys, memo=self.memo)
        if keys:
            journal.add_lines(
                session, [_line(entries[key], leg) for key in keys for leg in checked[key]], entries
            )
        insert_rows(
            session,
            Allocation.__table__,
            [
                {"payment_id": p, "invoice_id": i, "amount": a, "reason": r,
                 "entry_id": entries[key]}
                for key, p, i, a, r in self._allocations
            ],
        )  # fmt: skip
        insert_rows(
            session,
            WriteOff.__table__,
            [
                {"invoice_id": i, "amount": a, "kind": k, "reason": r, "payment_id": p,
                 "reverses_id": w, "entry_id": entries[key]}
                for key, i, a, k, r, p, w in self._write_offs
            ],
        )  # fmt: skip
        self.refund_ids = insert_rows(
            session,
            Refund.__table__,
            [
                {"payment_id": p, "amount": a, "currency": c, "status": s, "reason": r,
                 "entry_id": entries[key],
                 **{k: (entries[v] if k == "paid_entry_id" and v is not None else v)
                    for k, v in extra.items()}}
                for (key, p, a, c, s, r), extra in zip(
                    self._refunds, self._refund_columns, strict=True
                )
            ],
            ids=True,
        )  # fmt: skip
        insert_rows(
            session,
            InvoiceCredit.__table__,
            [{**row, "entry_id": entries[key]} for key, row in self._credits],
        )
        for key, refund_id, values in self._refund_updates:
            if key is not None:
                values = {**values, "paid_entry_id": entries[key]}
            session.execute(update(Refund).where(Refund.id == refund_id).values(**values))
            expire(session, Refund, refund_id)
        if self._plans:
            custom_plans(session)
        self._update_payments()
        changed = self._update_invoices()
        if self._plans:
            # The rows the audit and the handlers insert (receipts, events) have foreign
            # keys: under custom plans each row's checks would be planned anew (2.4× the
            # cost of an insert of a thousand notices, measured).
            cached_plans(session)
        self._record_audit(entries)
        # In this transaction: what depends on invoices' amounts (collections re-evaluates
        # their policies; notifications write receipts) hears of it here, whatever the road.
        publish(
            session,
            MONEY_MOVED,
            allocations=[(p, i, a) for _key, p, i, a, _r in self._allocations],
            invoice_ids=changed,
            payment_ids=sorted(self.payments),
            on=self.on,
            reason=self.reason,
            settings=self.settings,
        )

    def _update_payments(self) -> None:
        groups: dict[tuple[bool, bool], list[PaymentState]] = defaultdict(list)
        for pay in self.payments.values():
            if pay.rule is not _KEEP or pay.evidence is not _KEEP or pay.snapshot() != pay.start:
                groups[(pay.rule is not _KEEP, pay.evidence is not _KEEP)].append(pay)
        for (rule, evidence), pays in groups.items():
            adds = ["amount_allocated", "amount_unapplied"]
            adds += ["amount_refunded"] * any(p.refunded != p.start[1] for p in pays)
            adds += ["amount_reversed"] * any(p.reversed != p.start[2] for p in pays)
            assign = ["status", "policyholder_id", "payer_from_match"]
            assign += ["reversed_on"] * any(p.reversed_on != p.start[7] for p in pays)
            assign += ["match_rule"] * rule + ["match_evidence"] * evidence
            rows = []
            for pay in pays:
                row: dict[str, Any] = {
                    "id": pay.id,
                    "amount_allocated": pay.allocated - pay.start[0],
                    "amount_unapplied": pay.unapplied - pay.start[3],
                    "status": pay.status,
                    "policyholder_id": pay.holder,
                    "payer_from_match": pay.from_match,
                }
                if "amount_refunded" in adds:
                    row["amount_refunded"] = pay.refunded - pay.start[1]
                if "amount_reversed" in adds:
                    row["amount_reversed"] = pay.reversed - pay.start[2]
                if "reversed_on" in assign:
                    row["reversed_on"] = pay.reversed_on
                if rule:
                    row["match_rule"] = pay.rule
                if evidence:
                    row["match_evidence"] = (
                        None if pay.evidence is None else audit.jsonable(pay.evidence)
                    )
                rows.append(row)
            update_rows(self.session, PAYMENTS, rows, add=adds, assign=assign)
            for pay in pays:
                expire(self.session, Payment, pay.id)

    def _update_invoices(self) -> list[int]:
        """Write the invoices whose amounts or status changed; their ids."""
        rows = []
        credited = any(inv.credited != inv.credited_start for inv in self.invoices.values())
        for inv in self.invoices.values():
            paid, written, _, status = inv.start
            if (inv.paid, inv.written, inv.status, inv.credited) == (
                paid, written, status, inv.credited_start,
            ):  # fmt: skip
                continue
            row = {
                "id": inv.id,
                "amount_paid": inv.paid - paid,
                "amount_written_off": inv.written - written,
                "amount_due": (paid - inv.paid) + (written - inv.written),
                "status": inv.status,
            }
            if credited:  # a credit note: the total and the amount due fall with it
                delta = inv.credited - inv.credited_start
                row["amount_credited"] = delta
                row["total"] = -delta
                row["amount_due"] -= delta
            rows.append(row)
        adds = ["amount_paid", "amount_written_off", "amount_due"]
        update_rows(
            self.session,
            INVOICES,
            rows,
            add=adds + ["amount_credited", "total"] * credited,
            assign=("status",),
        )
        for row in rows:
            expire(self.session, Invoice, row["id"])
        return [row["id"] for row in rows]

    def _record_audit(self, entries: Mapping[tuple[str, date], int]) -> None:
        postings: list[list[Any]] = []
        refunds: list[list[Any]] = []
        reversals: list[list[Any]] = []
        for element in self._elements:
            pay = element.payment
            payment = None if pay is None else f"pay_{pay.id}"
            holder = None if pay is None else pay.holder
            for invoice_id, (allocated, written) in element.invoices.items():
                postings.append([payment, f"inv_{invoice_id}", allocated, written, holder])
            if not element.invoices:
                postings.append([payment, None, 0, 0, holder])
            if element.refunded:
                refunds.append([payment, element.refunded])
            if element.reversed:
                reversals.append([payment, element.reversed])
        after: dict[str, Any] = {
            "reason": self.reason,
            "memo": self.memo,
            "entries": [[kind, on, entry_id] for (kind, on), entry_id in entries.items()],
            "layout": AUDIT_LAYOUT["posting"],
            "postings": postings,
        }
        if refunds:
            after["refunds"] = refunds
        if reversals:
            after["reversals"] = reversals
        if self._audit_credits:
            after["credit_layout"] = AUDIT_LAYOUT["credit"]
            after["credits"] = self._audit_credits
        if self._audit_payouts:
            after["refund_payout_layout"] = AUDIT_LAYOUT["refund_payout"]
            after["refund_payouts"] = self._audit_payouts
        audit.record(self.session, "posted", "postings", None, after=after)


def lock_invoices(
    session: Session, settings: Settings, ids: Iterable[int]
) -> dict[int, InvoiceState]:
    """Lock invoices (id order) and read their amounts, for a road that decides what to post
    from them before the payments it posts exist (a Stripe payment: the invoice its metadata
    names). The posting that follows in the same transaction reads them again."""
    # Not custom plans: the COPYs of a `receive` that follows would re-plan every row's
    # foreign-key checks (the locking probe is a primary-key probe whatever the plan).
    return Batch(session, settings, on=date.min, reason="lock").lock_invoices(ids)


def take_back_plan(allocations: Mapping[int, int], needed: int) -> dict[int, int]:
    """Which allocations ({invoice id: net}, most recent first) give back `needed`."""
    out: dict[int, int] = {}
    for invoice_id, net in allocations.items():
        if needed <= 0:
            break
        take = min(net, needed)
        out[invoice_id] = take
        needed -= take
    return out


# ----------------------------------------------------------------------------- the roads


def post(
    session: Session,
    settings: Settings,
    plans: Sequence[Plan],
    *,
    on: date,
    reason: str = "match",
    memo: str | None = None,
) -> dict[int, str]:
    """Post the plans (one per payment) as one batch; returns the refused ones, {payment id:
    why}. Flushed, not committed."""
    if not plans:
        return {}
    batch = Batch(session, settings, on=on, reason=reason, memo=memo, plans=True)
    batch.lock_payments(p.payment_id for p in plans)
    batch.lock_invoices(i for p in plans for i, _ in (*p.allocations, *(p.write_offs or ())))
    refused: dict[int, str] = {}
    for plan in plans:
        why = batch.allocate(plan)
        if why is not None:
            refused.setdefault(plan.payment_id, why.reason)
    batch.write()
    log.info(
        "matches posted",
        extra={"event": "matches_posted", "posted": len(plans) - len(refused),
               "refused": len(refused)},
    )  # fmt: skip
    return refused


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
    """Allocate a payment to invoices ([(invoice id, amount)]): a batch of one. A refusal is
    raised: unknown payment 404, reversed 409, anything else 422 naming the field. When the
    payment is then fully applied, an invoice remainder within tolerance is written off
    (unless `auto_write_off` is false)."""
    today = on or business_date(settings.timezone)
    batch = Batch(session, settings, on=today, reason=reason)
    batch.lock_payments([payment_id])
    batch.lock_invoices(invoice_id for invoice_id, _ in requested)
    plan = Plan(payment_id, list(requested), rule=rule or reason, evidence=evidence,
                write_off=auto_write_off)  # fmt: skip
    why = batch.allocate(plan)
    if why is not None:
        raise_refusal(why)
    batch.write()
    finish(session, commit)
    log.info(
        "payment allocated",
        extra={
            "event": "payment_allocated",
            "payment_id": payment_id,
            "invoices": sorted({invoice_id for invoice_id, _ in requested}),
            "amount": sum(amount for _, amount in requested),
            "reason": reason,
        },
    )
    return get_fresh(session, payment_id)


def _taking_back(
    session: Session, settings: Settings, payment_id: int, reason: str, on: date
) -> tuple[Batch, PaymentState, dict[int, int]]:
    """A batch with the payment locked, its net allocations read (most recent first)."""
    batch = Batch(session, settings, on=on, reason=reason)
    pay = batch.lock_payments([payment_id]).get(payment_id)
    if pay is None:
        raise NotFound("payment not found")
    return batch, pay, net_allocations(session, payment_id)


def unallocate(
    session: Session,
    settings: Settings,
    payment_id: int,
    *,
    on: date | None = None,
    commit: bool = True,
) -> Payment:
    """Undo every allocation of the payment: the invoices re-open (the tolerance write-offs
    it caused reversed), the money is unapplied again (suspense if the match had named the
    payer), the match is cleared."""
    today = on or business_date(settings.timezone)
    batch, pay, allocations = _taking_back(session, settings, payment_id, "undo", today)
    batch.lock_invoices(allocations)
    batch.take_back(pay.id, allocations, reason="undo", forget_payer=True)
    batch.clear_match(pay.id)
    batch.write()
    finish(session, commit)
    log.info(
        "payment unallocated", extra={"event": "payment_unallocated", "payment_id": payment_id}
    )
    return get_fresh(session, payment_id)


def refund(
    session: Session,
    settings: Settings,
    payment_id: int,
    amount: int,
    *,
    reason: str | None = None,
    on: date | None = None,
    commit: bool = True,
    status: str = "pending",
) -> Payment:
    """Owe `amount` back to the payer (refunds payable): taken from the unapplied money
    first, then from the most recent allocations (their invoices re-open). `status`: of the
    refund row (`succeeded` when Stripe already paid it out: paid out at once)."""
    today = on or business_date(settings.timezone)
    batch, pay, allocations = _taking_back(session, settings, payment_id, "refund", today)
    why = rules.refund_refusal(pay.status, amount, pay.amount - pay.refunded - pay.reversed)
    if why is not None:
        raise_refusal(why)
    needed = take_back_plan(allocations, amount - pay.unapplied)
    batch.lock_invoices(needed)
    batch.refund(pay.id, amount, allocations, reason=reason, status=status)
    batch.write()
    finish(session, commit)
    log.info(
        "payment refunded",
        extra={"event": "payment_refunded", "payment_id": payment_id, "amount": amount},
    )
    return get_fresh(session, payment_id)


def refund_reversed(
    session: Session,
    settings: Settings,
    payment_id: int,
    amount: int,
    *,
    on: date,
    reason: str,
    status: str = "succeeded",
) -> int:
    """A refund learnt after a chargeback reversed the payment (see `Batch.refund_reversed`).
    Returns the amount reclassified. Flushed, not committed."""
    batch = Batch(session, settings, on=on, reason="refund", memo="reclassified as a refund")
    if payment_id not in batch.lock_payments([payment_id]):
        raise NotFound("payment not found")
    done = batch.refund_reversed(payment_id, amount, reason=reason, status=status)
    batch.write()
    session.flush()
    return done


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
    batch, pay, allocations = _taking_back(session, settings, payment_id, "reversal", on)
    batch.memo = reason
    if pay.status == "reversed":
        raise Conflict("the payment is already reversed")
    batch.lock_invoices(allocations)
    batch.reverse(pay.id, allocations)
    batch.write()
    finish(session, commit)
    log.info("payment reversed", extra={"event": "payment_reversed", "payment_id": payment_id})
    return get_fresh(session, payment_id)


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class PaymentView:
    payment: Payment
    allocations: list[dict[str, int]]
    refunds: list[Refund]
    write_offs: list[WriteOff]


def views(session: Session, payments: Sequence[Payment]) -> dict[int, PaymentView]:
    """The views of the payments of a page, {payment id: view}, in three queries."""
    ids = [p.id for p in payments]
    if not ids:
        return {}
    nets = _net_allocations(session, ids)
    refunds: dict[int, list[Refund]] = defaultdict(list)
    for refund_row in session.scalars(
        select(Refund).where(Refund.payment_id.in_(ids)).order_by(Refund.id)
    ):
        refunds[refund_row.payment_id].append(refund_row)
    write_offs: dict[int, list[WriteOff]] = defaultdict(list)
    for write_off_row in session.scalars(
        select(WriteOff).where(WriteOff.payment_id.in_(ids)).order_by(WriteOff.id)
    ):
        assert write_off_row.payment_id is not None
        write_offs[write_off_row.payment_id].append(write_off_row)
    return {
        p.id: PaymentView(
            p,
            [{"invoice_id": i, "amount": a} for i, a in sorted(nets.get(p.id, {}).items())],
            refunds[p.id],
            write_offs[p.id],
        )
        for p in payments
    }


def view(session: Session, payment: Payment) -> PaymentView:
    return views(session, [payment])[payment.id]


__all__ = [
    "AUDIT_LAYOUT",
    "Batch",
    "PaymentView",
    "Plan",
    "Received",
    "allocate",
    "create_payment",
    "expire",
    "finish",
    "get_fresh",
    "get_payment",
    "InvoiceState",
    "lock_invoices",
    "PaymentState",
    "net_allocations",
    "post",
    "raise_refusal",
    "receive",
    "refund",
    "refund_reversed",
    "reverse",
    "take_back_plan",
    "unallocate",
    "view",
    "views",
]
