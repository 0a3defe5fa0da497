"""What the roads that post what a payment names need of the allocation order (setting
ALLOCATION_ORDER; the rule is `payments.rules.allocation_order`): a payment that names one
installment of a policy while an older one is open settles the oldest first, and its
evidence keeps the invoices it named (`named_evidence`). A reconciliation run orders its
matches against its snapshot (`reconciliation.runs.InOrder`); a Stripe payment against the
locked rows (`stripe_billing.payments.post_succeeded`, with `policies_of`). A person's
explicit allocation (`posting.allocate`) stands as given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from premium_billing.db.bulk import any_of
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.payments.rules import Installment


@dataclass(frozen=True)
class Policies:
    """Invoices with their policy and due date: those named, and every invoice of their
    policies that had something due when read (`policies_of`)."""

    of: Mapping[int, tuple[int, date]]  # invoice id -> (policy id, due date)
    invoices: Mapping[int, Sequence[int]]  # policy id -> its invoice ids here, oldest first

    def ids(self) -> set[int]:
        return set(self.of)

    def installments(
        self, invoice_ids: Iterable[int], due_of: Callable[[int], int]
    ) -> list[Installment]:
        """The installments of the policies of these invoices, each with what `due_of`
        says is due on it now (0: it takes no money)."""
        of = self.of
        policies = {of[i][0] for i in invoice_ids if i in of}
        return [
            Installment(i, policy, of[i][1], due_of(i))
            for policy in policies
            for i in self.invoices[policy]
        ]


def policies_of(session: Session, invoice_ids: Iterable[int]) -> Policies:
    """The named invoices and every invoice of their policies with something due, with
    policy and due date (which never change): one query, no lock. Lock them, in id order,
    before reading what is due on them."""
    ids = sorted(set(invoice_ids))
    if not ids:
        return Policies({}, {})
    # Two index probes (by id, then by policy): one statement with OR scanned every invoice.
    named = session.execute(
        select(Invoice.id, Invoice.policy_id, Invoice.due_date).where(
            any_of(session, Invoice.id, ids)
        )
    ).all()
    policy_ids = sorted({policy_id for _, policy_id, _ in named})
    payable = (
        session.execute(
            select(Invoice.id, Invoice.policy_id, Invoice.due_date).where(
                any_of(session, Invoice.policy_id, policy_ids),
                Invoice.status.in_(PAYABLE_STATUSES),
                Invoice.amount_due > 0,
            )
        ).all()
        if policy_ids
        else []
    )
    rows = {row[0]: row for row in (*named, *payable)}.values()
    of: dict[int, tuple[int, date]] = {}
    invoices: dict[int, list[int]] = {}
    for invoice_id, policy_id, due_date in rows:
        of[invoice_id] = (policy_id, due_date)
        invoices.setdefault(policy_id, []).append(invoice_id)
    for ids_of in invoices.values():
        if len(ids_of) > 1:
            ids_of.sort(key=lambda i: (of[i][1], i))
    return Policies(of, invoices)


def named_evidence(
    evidence: Mapping[str, Any] | None, named: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    """The evidence of a payment the allocation order moved: the invoices it named kept."""
    return {
        **(evidence or {}),
        "allocation_order": "oldest_first",
        "named_invoices": sorted({f"inv_{invoice_id}" for invoice_id, _ in named}),
    }


def same_allocations(a: Sequence[tuple[int, int]], b: Sequence[tuple[int, int]]) -> bool:
    """Whether two lists of (invoice id, amount) move the same amount to each invoice."""
    totals: dict[int, int] = {}
    for invoice_id, amount in a:
        totals[invoice_id] = totals.get(invoice_id, 0) + amount
    for invoice_id, amount in b:
        totals[invoice_id] = totals.get(invoice_id, 0) - amount
    return not any(totals.values())


__all__ = ["Policies", "named_evidence", "policies_of", "same_allocations"]
