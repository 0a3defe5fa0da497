"""Allocation plans: how one payment is spread over candidate invoices of one policyholder.

Every plan keeps the money invariant: sum(allocations) + credit == the payment's amount, and
for each invoice allocation + write-off <= amount_due (== for a settled invoice). A
write-off is not money received: it closes a short payment, and only the way posting
accepts it (`premium_billing.payments.rules.refusal`): on an invoice the plan pays, exactly
what that invoice has left due after the allocation, and within tolerance of its total
(`premium_billing.invoicing.rules.within_tolerance`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from premium_billing.invoicing.rules import within_tolerance
from premium_billing.reconciliation.matching.scores import MAX_COMBINATION_POOL
from premium_billing.reconciliation.matching.types import (
    AGE_KEY,
    MatchSettings,
    OpenInvoice,
    Outcome,
)


class Plan(NamedTuple):
    holder: str
    allocations: tuple[tuple[str, int], ...]
    write_offs: tuple[tuple[str, int], ...]
    credit: int
    outcome: Outcome
    how: str  # "exact" | "several" | "tolerance" | "partial" | "overpayment"


def exact_plan(
    amount: int, holder: str, pool: Sequence[OpenInvoice], required: Sequence[OpenInvoice] = ()
) -> Plan | None:
    """Invoices of `pool` (oldest first) that the amount pays exactly, including `required`."""
    rest: Sequence[OpenInvoice]
    if required:
        req_sum = sum(i.amount_due for i in required)
        if req_sum == amount:
            chosen: Sequence[OpenInvoice] = sorted(required, key=AGE_KEY)
            return full_plan(holder, chosen, "exact" if len(chosen) == 1 else "several")
        req_ids = {i.id for i in required}
        rest = [i for i in pool if i.id not in req_ids]
        target = amount - req_sum
        if target <= 0:
            return None
    else:
        rest = pool
        target = amount
        if target <= 0:
            return None
        for inv in rest:  # one invoice, the oldest with that amount
            if inv.amount_due == target:
                return full_plan(holder, (inv,), "exact")
    total = 0
    for k, inv in enumerate(rest):  # the oldest k invoices
        total += inv.amount_due
        if total == target:
            return full_plan(holder, sorted([*required, *rest[: k + 1]], key=AGE_KEY), "several")
        if total > target:
            break
    m = len(rest)
    if m < 2 or m > MAX_COMBINATION_POOL:
        return None
    # Any two or three of a few invoices, oldest combination first (the order in which
    # itertools.combinations would list them).
    amounts = [i.amount_due for i in rest]
    present = set(amounts)
    for a in range(m - 1):
        need = target - amounts[a]
        if need in present:
            for b in range(a + 1, m):
                if amounts[b] == need:
                    return full_plan(holder, sorted([*required, rest[a], rest[b]], key=AGE_KEY),
                                 "several")  # fmt: skip
    for a in range(m - 2):
        for b in range(a + 1, m - 1):
            need = target - amounts[a] - amounts[b]
            if need in present:
                for c in range(b + 1, m):
                    if amounts[c] == need:
                        chosen = sorted([*required, rest[a], rest[b], rest[c]], key=AGE_KEY)
                        return full_plan(holder, chosen, "several")
    return None


def covering_prefix(pool: Sequence[OpenInvoice], amount: int) -> Sequence[OpenInvoice]:
    """The oldest invoices of `pool` that the amount reaches into (all when it covers all)."""
    total = 0
    for k, inv in enumerate(pool):
        total += inv.amount_due
        if total >= amount:
            return pool[: k + 1]
    return pool


def full_plan(holder: str, invoices: Sequence[OpenInvoice], how: str) -> Plan:
    """Each invoice paid what it has due."""
    allocs = tuple((i.id, i.amount_due) for i in invoices)
    return Plan(holder, allocs, (), 0, "matched", how)


def writeoff_allowed(remainder: int, invoice: OpenInvoice, settings: MatchSettings) -> bool:
    """Whether posting writes off `remainder`, what `invoice` has left due after this
    payment: within tolerance of the invoice's total (its amount due when the total is not
    known, which is never more)."""
    total = invoice.amount_due if invoice.total is None else invoice.total
    return within_tolerance(remainder, total, settings.tolerance_abs, settings.tolerance_pct)


def spread_plan(
    amount: int, holder: str, invoices: Sequence[OpenInvoice], settings: MatchSettings
) -> Plan:
    """Oldest first; an overpayment leaves credit; a short payment writes off the remainder
    of the last invoice it pays when posting would (`writeoff_allowed`): it settles them all
    when it reaches every invoice, else it is partial (the invoices it does not reach stay
    open)."""
    ordered = sorted(invoices, key=AGE_KEY)
    due = sum(i.amount_due for i in ordered)
    if amount >= due:
        allocs = tuple((i.id, i.amount_due) for i in ordered)
        how = "exact" if amount == due else "overpayment"
        return Plan(holder, allocs, (), amount - due, "matched", how)
    allocations: list[tuple[str, int]] = []
    left = amount
    for inv in ordered:
        if left <= 0:
            break
        part = min(left, inv.amount_due)
        allocations.append((inv.id, part))
        left -= part
    # The payment is fully applied: as posting does (`payments.rules.tolerance_write_offs`),
    # the invoice it paid short (oldest first: only the last) is written off when what it
    # has left is within tolerance. An invoice the payment does not reach is not written off.
    if not allocations:
        return Plan(holder, (), (), 0, "partial", "partial")
    last = ordered[len(allocations) - 1]
    gap = last.amount_due - allocations[-1][1]
    write_offs = ((last.id, gap),) if gap > 0 and writeoff_allowed(gap, last, settings) else ()
    if write_offs and len(allocations) == len(ordered):
        return Plan(holder, tuple(allocations), write_offs, 0, "matched", "tolerance")
    return Plan(holder, tuple(allocations), write_offs, 0, "partial", "partial")
