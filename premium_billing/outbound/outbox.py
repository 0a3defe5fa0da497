"""Outbound events written in the business event's transaction (the bootstrap wires these
to db.hooks' domain events): an event row once per (type, business key), then one delivery
per enabled endpoint subscribed to its type, by one INSERT … SELECT over the subscriptions.
Set-based: an invoicing batch is one multi-row INSERT of events and one of deliveries."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from premium_billing.db.bulk import any_of, insert_new, insert_rows_new
from premium_billing.db.types import UTCDateTime, utcnow
from premium_billing.http.ids import format_id
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import payment_reference
from premium_billing.notifications.outbox import policy_holders, refunds_paid
from premium_billing.payments.models import Payment
from premium_billing.payments.rules import applied_by_payment

from .models import EventDelivery, OutboundEvent, WebhookEndpoint, WebhookSubscription
from .rules import STATE_EVENTS


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def wanted(session: Session, event_type: str, *more: str) -> bool:
    """Whether an enabled endpoint subscribes to `event_type` (or to one of `more`): an
    event nobody is sent is not stored (an endpoint gets the events from its registration
    on, as Stripe's do), so a service without endpoints writes no event rows at all."""
    return (
        session.scalar(
            select(WebhookSubscription.endpoint_id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookSubscription.endpoint_id)
            .where(
                WebhookSubscription.event_type.in_((event_type, *more)),
                WebhookEndpoint.status == "enabled",
                WebhookEndpoint.deleted_at.is_(None),
            )
            .limit(1)
        )
        is not None
    )


def record(session: Session, events: Sequence[tuple[str, str, dict[str, Any]]]) -> list[int]:
    """Store `events` ((type, business key, data)) not stored yet whose type an endpoint
    wants, and fan each new one out to its endpoints; the new events' ids."""
    types = {t: wanted(session, t) for t in {t for t, _k, _d in events}}
    ids = insert_rows_new(
        session,
        OutboundEvent.__table__,
        [{"type": t, "business_key": k[:100], "data": d} for t, k, d in events if types[t]],
    )
    fan_out(session, ids)
    return ids


def fan_out(session: Session, event_ids: Sequence[int]) -> int:
    """A pending delivery of each of `event_ids` to every enabled endpoint subscribed to its
    type (none twice: unique per event and endpoint)."""
    if not event_ids:
        return 0
    now = literal(utcnow(), UTCDateTime())
    chosen = (
        select(
            OutboundEvent.id,
            WebhookSubscription.endpoint_id,
            literal("pending"),
            literal(0),
            now,
            now,
            now,
        )
        .join(WebhookSubscription, WebhookSubscription.event_type == OutboundEvent.type)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookSubscription.endpoint_id)
        .where(
            any_of(session, OutboundEvent.id, event_ids),
            WebhookEndpoint.status == "enabled",
            WebhookEndpoint.deleted_at.is_(None),
        )
    )
    columns = [
        "event_id", "endpoint_id", "status", "attempts", "next_attempt_at", "created_at",
        "updated_at",
    ]  # fmt: skip
    result = session.execute(
        insert_new(session, EventDelivery.__table__).from_select(columns, chosen)
    )
    return int(result.rowcount or 0)


def invoices_issued(session: Session, invoice_ids: Sequence[int]) -> list[int]:
    """`invoice.issued` per invoice."""
    if not invoice_ids or not wanted(session, "invoice.issued"):
        return []
    rows = session.execute(
        select(
            Invoice.id,
            Invoice.number,
            Invoice.policy_id,
            Invoice.policyholder_id,
            Invoice.currency,
            Invoice.total,
            Invoice.amount_due,
            Invoice.issue_date,
            Invoice.due_date,
        ).where(any_of(session, Invoice.id, invoice_ids))
    ).all()
    return record(
        session,
        [
            (
                "invoice.issued",
                f"inv_{r.id}",
                {
                    "invoice_id": format_id("invoice", r.id),
                    "number": r.number,
                    "policy_id": format_id("policy", r.policy_id),
                    "policyholder_id": format_id("policyholder", r.policyholder_id),
                    "currency": r.currency,
                    "total": r.total,
                    "amount_due": r.amount_due,
                    "issue_date": r.issue_date.isoformat(),
                    "due_date": r.due_date.isoformat(),
                    "payment_reference": payment_reference(r.number),
                },
            )
            for r in rows
        ],
    )


def payments_posted(
    session: Session, allocations: Iterable[tuple[int, int, int]], on: date
) -> list[int]:
    """`payment.posted` per payment this batch allocated money from, once per payment."""
    given = applied_by_payment(allocations)
    if not given or not wanted(session, "payment.posted"):
        return []
    payments = session.execute(
        select(
            Payment.id,
            Payment.amount,
            Payment.currency,
            Payment.received_on,
            Payment.method,
            Payment.policyholder_id,
        ).where(any_of(session, Payment.id, sorted(given)))
    ).all()
    return record(
        session,
        [
            (
                "payment.posted",
                f"pay_{p.id}",
                {
                    "payment_id": format_id("payment", p.id),
                    "amount": p.amount,
                    "currency": p.currency,
                    "method": p.method,
                    "received_on": p.received_on.isoformat(),
                    "posted_on": on.isoformat(),
                    "policyholder_id": format_id("policyholder", p.policyholder_id),
                    "allocations": [
                        {"invoice_id": format_id("invoice", i), "amount": a}
                        for i, a in sorted(given[p.id].items())
                    ],
                },
            )
            for p in payments
        ],
    )


def payments_failed(session: Session, failures: Sequence[Mapping[str, Any]]) -> list[int]:
    """`payment.failed` per failed attempt."""
    return record(
        session,
        [
            (
                "payment.failed",
                str(f["attempt_id"]),
                {
                    "attempt_id": str(f["attempt_id"]),
                    "policyholder_id": format_id("policyholder", f["policyholder_id"]),
                    "invoice_ids": [format_id("invoice", i) for i in f.get("invoice_ids") or ()],
                    "amount": f.get("amount"),
                    "currency": f.get("currency"),
                    "reason": f.get("reason"),
                },
            )
            for f in failures
        ],
    )


def delinquency_changed(session: Session, transitions: Sequence[Mapping[str, Any]]) -> list[int]:
    """`policy.past_due`, `policy.in_grace`, `policy.lapsed`, `policy.reinstated` per
    transition into that state (business key: the policy, the state and the day). With no
    endpoint subscribed to any of them nothing is read nor written."""
    if not transitions or not wanted(session, *STATE_EVENTS.values()):
        return []
    changes = [t for t in transitions if t["to_state"] in STATE_EVENTS]
    holders = policy_holders(session, sorted({t["policy_id"] for t in changes}))
    return record(
        session,
        [
            (
                STATE_EVENTS[t["to_state"]],
                f"pol_{t['policy_id']}:{_iso(t['on'])}",
                {
                    "policy_id": format_id("policy", t["policy_id"]),
                    "policyholder_id": format_id("policyholder", holders.get(t["policy_id"])),
                    "from_state": t.get("from_state"),
                    "to_state": t["to_state"],
                    "on": _iso(t["on"]),
                    "oldest_unpaid_due_date": _iso(t.get("oldest_unpaid_due_date")),
                    "amount_overdue": t.get("amount_overdue"),
                    "currency": t.get("currency"),
                },
            )
            for t in changes
        ],
    )


def refunds_sent(session: Session, refund_ids: Sequence[int]) -> list[int]:
    """`refund.sent` per refund paid out."""
    if not refund_ids or not wanted(session, "refund.sent"):
        return []
    return record(
        session,
        [
            (
                "refund.sent",
                f"re_{r.id}",
                {
                    "refund_id": format_id("refund", r.id),
                    "payment_id": format_id("payment", r.payment_id),
                    "policyholder_id": format_id("policyholder", r.payer),
                    "amount": r.amount,
                    "currency": r.currency,
                    "channel": r.channel,
                    "paid_on": _iso(r.paid_on),
                },
            )
            for r in refunds_paid(session, refund_ids)
        ],
    )
