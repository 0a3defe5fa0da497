"""Notices queued in the business event's transaction (the bootstrap wires these to the
domain events of db.hooks). Each is a row unique per (kind, business key): a notice
published twice is stored once. Set-based: an invoicing batch's thousands of invoices are
one INSERT … SELECT; the others one multi-row INSERT per event."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, cast, func, literal, select, text
from sqlalchemy.orm import Session, aliased

from premium_billing.db.bulk import (
    any_of,
    insert_new,
    insert_rows_new,
    json_array_of,
    json_object,
    rows_table,
)
from premium_billing.db.types import UTCDateTime, utcnow
from premium_billing.invoicing.models import Invoice
from premium_billing.payments.models import Payment, Refund
from premium_billing.payments.rules import applied_by_payment
from premium_billing.policies.models import Policy

from .models import Notification
from .rules import STEP_KINDS


def _json_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Dates as ISO text: the facts are stored as JSON."""
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in facts.items()}


def _queued(**row: Any) -> dict[str, Any]:
    return {"status": "queued", "attempts": 0, "next_attempt_at": utcnow(), **row}


def queue_invoices_issued(session: Session, invoice_ids: Sequence[int]) -> int:
    """An `invoice_issued` notice per invoice with something to pay (business key
    `inv_<id>`; one a credit balance settled at issue has its payment receipt instead):
    one INSERT … SELECT over the invoices."""
    if not invoice_ids:
        return 0
    now = literal(utcnow(), UTCDateTime())
    table = Notification.__table__
    columns = [
        "kind", "business_key", "policyholder_id", "policy_id", "invoice_id", "status",
        "attempts", "next_attempt_at", "created_at", "updated_at",
    ]  # fmt: skip
    chosen = select(
        literal("invoice_issued"),
        literal("inv_") + cast(Invoice.id, String),
        Invoice.policyholder_id,
        Invoice.policy_id,
        Invoice.id,
        literal("queued"),
        literal(0),
        now,
        now,
        now,
    ).where(any_of(session, Invoice.id, invoice_ids), Invoice.amount_due > 0)
    result = session.execute(insert_new(session, table).from_select(columns, chosen))
    return int(result.rowcount or 0)


def queue_receipts(
    session: Session, allocations: Iterable[tuple[int, int, int]], on: date
) -> list[int]:
    """A `payment_receipt` per payment that this batch allocated money from (business key
    `pay_<id>`: the first allocation of a payment sends its receipt, later ones none): one
    INSERT … SELECT over what the batch applied (`rows_table`), its facts built by the
    database — the payment, the amount applied, the invoices' numbers (by id) — and
    addressed to the holder and policy of the first of them."""
    given = applied_by_payment(allocations)
    if not given:
        return []
    applied = rows_table(
        session,
        "applied",
        [("payment_id", BigInteger()), ("invoice_id", BigInteger()), ("amount", BigInteger())],
        [(p, i, a) for p, per in sorted(given.items()) for i, a in sorted(per.items())],
    )
    named = (
        select(applied.c.payment_id, applied.c.invoice_id, applied.c.amount, Invoice.number)
        .join(Invoice, Invoice.id == applied.c.invoice_id)
        .order_by(applied.c.payment_id, applied.c.invoice_id)
        .subquery("named")
    )
    per_payment = (
        select(
            named.c.payment_id,
            func.sum(named.c.amount).label("amount"),
            func.min(named.c.invoice_id).label("first_id"),
            json_array_of(named.c.number, named.c.invoice_id).label("numbers"),
        )
        .group_by(named.c.payment_id)
        .subquery("per_payment")
    )
    first = aliased(Invoice)
    now = literal(utcnow(), UTCDateTime())
    facts = json_object(
        "payment_id", per_payment.c.payment_id,
        "amount", per_payment.c.amount,
        "payment_amount", Payment.amount,
        "currency", Payment.currency,
        "received_on", Payment.received_on,
        "on", on.isoformat(),
        "invoices", per_payment.c.numbers,
    )  # fmt: skip
    chosen = (
        select(
            literal("payment_receipt"),
            literal("pay_") + cast(per_payment.c.payment_id, String),
            first.policyholder_id,
            first.policy_id,
            first.id,
            facts,
            literal("queued"),
            literal(0),
            now,
            now,
            now,
        )
        .join(first, first.id == per_payment.c.first_id)
        .join(Payment, Payment.id == per_payment.c.payment_id)
        .where(per_payment.c.amount > 0)  # (SQLite: a WHERE before ON CONFLICT)
    )
    columns = [
        "kind", "business_key", "policyholder_id", "policy_id", "invoice_id", "facts",
        "status", "attempts", "next_attempt_at", "created_at", "updated_at",
    ]  # fmt: skip
    table = Notification.__table__
    stmt = insert_new(session, table).from_select(columns, chosen).returning(table.c.id)
    return list(session.scalars(stmt).all())


def queue_payment_failures(session: Session, failures: Sequence[Mapping[str, Any]]) -> list[int]:
    """A `payment_failed` notice per failed attempt (business key: its attempt_id)."""
    invoice_ids = sorted({i for f in failures for i in f.get("invoice_ids") or ()})
    policies = _invoice_policies(session, invoice_ids)
    rows = []
    for failure in failures:
        first = min(failure.get("invoice_ids") or [0])
        rows.append(
            _queued(
                kind="payment_failed",
                business_key=str(failure["attempt_id"])[:100],
                policyholder_id=failure["policyholder_id"],
                policy_id=policies.get(first),
                invoice_id=first or None,
                facts=_json_facts(
                    {k: failure.get(k) for k in ("amount", "currency", "reason", "invoice_ids")}
                ),
            )
        )
    return insert_rows_new(session, Notification.__table__, rows)


def _invoice_policies(session: Session, invoice_ids: Sequence[int]) -> dict[int, int]:
    if not invoice_ids:
        return {}
    return {
        r.id: r.policy_id
        for r in session.execute(
            select(Invoice.id, Invoice.policy_id).where(any_of(session, Invoice.id, invoice_ids))
        )
    }


def queue_collection_steps(session: Session, steps: Sequence[Mapping[str, Any]]) -> int:
    """A notice per collections step that sends one (reminder, grace notice, final notice,
    lapse, reinstatement), business key `step_<step_id>`; how many were new. The steps of a
    job's batch statement (`collections.assess_pg.Written`) name their rows by a `source`
    SELECT: their notices are one INSERT … SELECT, the steps never read into Python."""
    source = getattr(steps, "source", None)
    if source is not None:
        return _queue_step_rows(session, *source(sorted(STEP_KINDS)))
    wanted = [s for s in steps if s["step"] in STEP_KINDS]
    if not wanted:
        return []
    holders = policy_holders(session, sorted({s["policy_id"] for s in wanted}))
    rows = [
        _queued(
            kind=STEP_KINDS[step["step"]],
            business_key=f"step_{step['step_id']}",
            policyholder_id=holders[step["policy_id"]],
            policy_id=step["policy_id"],
            invoice_id=None,
            facts=_json_facts({k: v for k, v in step.items() if k != "settings"}),
        )
        for step in wanted
    ]
    return len(insert_rows_new(session, Notification.__table__, rows))


def _queue_step_rows(session: Session, select_steps: str, params: dict[str, Any]) -> int:
    """The notices of the steps `select_steps` yields (step_id, policy_id, policyholder_id,
    step, facts), as `queue_collection_steps` writes them, by one INSERT … SELECT. Those
    steps are rows this transaction wrote (new ids), so no notice of theirs exists yet: a
    plain INSERT (the unique key still holds: a duplicate would fail the transaction)."""
    kind = " ".join(f"WHEN '{step}' THEN '{kind}'" for step, kind in sorted(STEP_KINDS.items()))
    result = session.execute(
        text(
            "INSERT INTO notifications (kind, business_key, policyholder_id, policy_id, "
            "invoice_id, facts, status, attempts, next_attempt_at, created_at, updated_at) "
            f"SELECT CASE s.step {kind} END, 'step_' || s.step_id, s.policyholder_id, "
            "s.policy_id, NULL, s.facts, 'queued', 0, :now, :now, :now "
            f"FROM ({select_steps}) AS s WHERE s.step IN "
            f"({', '.join(repr(step) for step in sorted(STEP_KINDS))})"
        ).bindparams(bindparam("now", type_=UTCDateTime())),
        {**params, "now": utcnow()},
    )
    return int(result.rowcount or 0)


def policy_holders(session: Session, policy_ids: Sequence[int]) -> dict[int, int]:
    """Each policy's policyholder."""
    if not policy_ids:
        return {}
    return {
        r.id: r.policyholder_id
        for r in session.execute(
            select(Policy.id, Policy.policyholder_id).where(any_of(session, Policy.id, policy_ids))
        )
    }


def refunds_paid(session: Session, refund_ids: Sequence[int]) -> list[Any]:
    """The refunds paid out, each with its payer (the refund's, else its payment's)."""
    if not refund_ids:
        return []
    return list(
        session.execute(
            select(
                Refund.id,
                Refund.amount,
                Refund.currency,
                Refund.paid_on,
                Refund.channel,
                Refund.payment_id,
                func.coalesce(Refund.policyholder_id, Payment.policyholder_id).label("payer"),
            )
            .join(Payment, Payment.id == Refund.payment_id)
            .where(any_of(session, Refund.id, refund_ids))
        ).all()
    )


def queue_refunds_sent(session: Session, refund_ids: Sequence[int]) -> list[int]:
    """A `refund_sent` notice per refund paid out (business key `re_<id>`)."""
    rows = [
        _queued(
            kind="refund_sent",
            business_key=f"re_{r.id}",
            policyholder_id=r.payer,
            policy_id=None,
            invoice_id=None,
            facts=_json_facts(
                {
                    "refund_id": r.id,
                    "amount": r.amount,
                    "currency": r.currency,
                    "paid_on": r.paid_on,
                    "channel": r.channel,
                }
            ),
        )
        for r in refunds_paid(session, refund_ids)
        if r.payer is not None
    ]
    return insert_rows_new(session, Notification.__table__, rows)
