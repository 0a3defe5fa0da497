"""The allocation order on the roads that post what a payment names (setting
ALLOCATION_ORDER; the rule is `payments.rules.allocation_order`): a payment that names one
installment of a policy while an older one is open settles the oldest first, and its
evidence keeps the invoices it named (`named_invoices`). A reconciliation run's matches
(`post_in_order`) and a Stripe payment (`stripe_billing.payments.post_succeeded`) follow
it; a person's explicit allocation (`posting.allocate`) stands as given.

An invoice's policy and due date never change, so they are read without a lock
(`policies_of`); what is due is read from the rows the posting has locked, as the batch
changes them: a plan sees what the plans before it in the batch allocated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.db.bulk import any_of
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES, is_payable
from premium_billing.payments import rules
from premium_billing.payments.posting import Batch, InvoiceState, Plan
from premium_billing.payments.rules import Installment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policies:
    """Invoices with their policy and due date: those named, and every invoice of their
    policies that had something due when read (`policies_of`)."""

    of: Mapping[int, tuple[int, date]]  # invoice id -> (policy id, due date)
    invoices: Mapping[int, Sequence[int]]  # policy id -> its invoice ids here

    def ids(self) -> set[int]:
        return set(self.of)

    def installments(
        self, invoice_ids: Iterable[int], due_of: Callable[[int], int]
    ) -> list[Installment]:
        """The installments of the policies of these invoices, each with what `due_of`
        says is due on it now (0: it takes no money)."""
        policies = {self.of[i][0] for i in invoice_ids if i in self.of}
        return [
            Installment(i, policy, self.of[i][1], due_of(i))
            for policy in sorted(policies)
            for i in self.invoices[policy]
        ]


def policies_of(session: Session, invoice_ids: Iterable[int]) -> Policies:
    """The named invoices and every invoice of their policies with something due, with
    policy and due date; one query, no lock (read them again locked to post)."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return Policies({}, {})
    named_policies = select(Invoice.policy_id).where(any_of(session, Invoice.id, ids))
    rows = session.execute(
        select(Invoice.id, Invoice.policy_id, Invoice.due_date)
        .where(
            or_(
                any_of(session, Invoice.id, ids),
                Invoice.policy_id.in_(named_policies)
                & Invoice.status.in_(PAYABLE_STATUSES)
                & (Invoice.amount_due > 0),
            )
        )
        .order_by(Invoice.id)
    ).all()
    of: dict[int, tuple[int, date]] = {}
    invoices: dict[int, list[int]] = {}
    for invoice_id, policy_id, due_date in rows:
        of[int(invoice_id)] = (int(policy_id), due_date)
        invoices.setdefault(int(policy_id), []).append(int(invoice_id))
    return Policies(of, invoices)


def due_now(invoices: Mapping[int, InvoiceState]) -> Callable[[int], int]:
    """What each locked invoice can take now, as the batch has changed it."""

    def due(invoice_id: int) -> int:
        inv = invoices.get(invoice_id)
        return inv.due if inv is not None and is_payable(inv.status) else 0

    return due


def named_evidence(
    evidence: Mapping[str, Any] | None, named: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    """The evidence of a payment the allocation order moved: the invoices it named kept."""
    return {
        **(evidence or {}),
        "allocation_order": "oldest_first",
        "named_invoices": sorted({f"inv_{invoice_id}" for invoice_id, _ in named}),
    }


def in_order(batch: Batch, plan: Plan, policies: Policies, order: str) -> Plan:
    """The plan in allocation order against the batch's locked, current amounts (the plan
    itself when the order moves nothing). A plan whose write-offs were expected gets those
    the tolerance rule gives for the allocations in order."""
    requested = list(plan.allocations)
    due = due_now(batch.invoices)
    ordered = rules.allocation_order(
        requested, policies.installments((i for i, _ in requested), due), order
    )
    if same_allocations(ordered, requested):
        return plan
    write_offs = plan.write_offs
    evidence = named_evidence(plan.evidence, requested)
    if write_offs is not None:
        pay = batch.payments.get(plan.payment_id)
        unapplied = (pay.unapplied if pay is not None else 0) - sum(a for _, a in ordered)
        left = {i: (due(i) - a, batch.invoices[i].total) for i, a in ordered}
        write_offs = (
            rules.tolerance_write_offs(unapplied, left, batch.tolerance) if plan.write_off else []
        )
        if "write_offs" in evidence:
            evidence["write_offs"] = [[f"inv_{i}", a] for i, a in write_offs]
    return replace(plan, allocations=ordered, write_offs=write_offs, evidence=evidence)


def same_allocations(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> bool:
    """Whether two lists of (invoice id, amount) move the same amount to each invoice."""
    totals: dict[int, int] = {}
    for invoice_id, amount in a:
        totals[invoice_id] = totals.get(invoice_id, 0) + amount
    for invoice_id, amount in b:
        totals[invoice_id] = totals.get(invoice_id, 0) - amount
    return not any(totals.values())


def post_in_order(
    session: Session,
    settings: Settings,
    plans: Sequence[Plan],
    *,
    on: date,
    reason: str = "match",
    memo: str | None = None,
) -> tuple[dict[int, str], dict[int, Plan]]:
    """`posting.post` with the allocation order: lock the payments, then the invoices the
    plans name and every invoice of their policies with something due; post each plan in
    order (`in_order`), in turn. Returns the refused ones, {payment id: why}, and the plans
    as posted, {payment id: plan}. Flushed, not committed."""
    if not plans:
        return {}, {}
    order = settings.allocation_order
    batch = Batch(session, settings, on=on, reason=reason, memo=memo, plans=True)
    batch.lock_payments(p.payment_id for p in plans)
    named = {i for p in plans for i, _ in (*p.allocations, *(p.write_offs or ()))}
    policies = policies_of(session, named) if order != "as_named" else Policies({}, {})
    batch.lock_invoices(named | policies.ids())
    refused: dict[int, str] = {}
    posted: dict[int, Plan] = {}
    for plan in plans:
        if order != "as_named":
            plan = in_order(batch, plan, policies, order)
        why = batch.allocate(plan)
        if why is None:
            posted[plan.payment_id] = plan
        else:
            refused.setdefault(plan.payment_id, why.reason)
    batch.write()
    log.info(
        "matches posted",
        extra={"event": "matches_posted", "posted": len(posted), "refused": len(refused),
               "reordered": sum(p.evidence is not None and "allocation_order" in p.evidence
                                for p in posted.values())},
    )  # fmt: skip
    return refused, posted


__all__ = [
    "Policies",
    "due_now",
    "in_order",
    "named_evidence",
    "policies_of",
    "post_in_order",
    "same_allocations",
]
