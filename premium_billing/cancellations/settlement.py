"""Settling the account of a cancelled (or lapsed) term, reversing it on reinstatement, and
taking a premium cut off what was billed. What each settles is `cancellations.rules`; here
it is read from the database and posted by the posting engine as one batch (credit notes,
allocations taken back, refunds owed), in the caller's transaction (nothing is committed).

The final invoice of earned but unbilled premium is issued by `invoicing.issue.issue_one`
(its line of kind `cancellation`); refunds whose money came from Stripe are sent to Stripe
after the caller commits (`send_refunds`: the Stripe feature, wired by the bootstrap)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from premium_billing.audit import trail as audit
from premium_billing.cancellations import rules
from premium_billing.config import Settings
from premium_billing.db.hooks import REFUNDS_OWED, publish
from premium_billing.errors import Conflict
from premium_billing.invoicing.issue import issue_one
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.money import format_major
from premium_billing.payments.models import Allocation, InvoiceCredit, Payment, Refund
from premium_billing.payments.posting import Batch, Plan, raise_refusal
from premium_billing.policies.models import Cancellation, Installment, Policy, PolicyTerm

log = logging.getLogger(__name__)

CREDIT_LINE = "premium_credit"


class TermChanged(Conflict):
    """A payment or invoice of the term appeared between reading and locking them: the
    caller rolls back and settles again (nothing was written that it keeps)."""


# ----------------------------------------------------------------------------- reading


def terms_invoices(session: Session, term_ids: Sequence[int]) -> dict[int, list[Invoice]]:
    """{term: its invoices that are not void} (its installments' and its settlements' final
    invoices), read afresh, in id order."""
    out: dict[int, list[Invoice]] = {term_id: [] for term_id in term_ids}
    if not term_ids:
        return out
    ids = list(term_ids)
    installments = (
        select(Invoice, Installment.term_id)
        .join(Installment, Installment.id == Invoice.installment_id)
        .where(Installment.term_id.in_(ids), Invoice.status != "void")
    )
    finals = (
        select(Invoice, Cancellation.term_id)
        .join(Cancellation, Cancellation.final_invoice_id == Invoice.id)
        .where(Cancellation.term_id.in_(ids), Invoice.status != "void")
    )
    found: list[tuple[Invoice, int]] = []
    for stmt in (installments, finals):
        rows = session.execute(stmt.execution_options(populate_existing=True))
        found.extend((invoice, int(term_id)) for invoice, term_id in rows)
    for invoice, term_id in sorted(found, key=lambda pair: pair[0].id):
        out[term_id].append(invoice)
    return out


def term_invoices(session: Session, term_id: int) -> list[Invoice]:
    """The term's invoices that are not void, read afresh, in id order."""
    return terms_invoices(session, [term_id])[term_id]


def allocations_to(session: Session, invoice_ids: Sequence[int]) -> list[rules.Allocated]:
    """The payments' net allocations (> 0) to these invoices."""
    if not invoice_ids:
        return []
    total = func.sum(Allocation.amount)
    rows = session.execute(
        select(Allocation.payment_id, Allocation.invoice_id, total, Payment.received_on)
        .join(Payment, Payment.id == Allocation.payment_id)
        .where(Allocation.invoice_id.in_(list(invoice_ids)))
        .group_by(Allocation.payment_id, Allocation.invoice_id, Payment.received_on)
        .having(total > 0)
        .order_by(Allocation.payment_id, Allocation.invoice_id)
    ).all()
    return [rules.Allocated(int(p), int(i), int(a), on) for p, i, a, on in rows]


def as_term_invoices(invoices: Sequence[Invoice]) -> list[rules.TermInvoice]:
    return [
        rules.term_invoice(
            invoice.id,
            invoice.due_date,
            invoice.lines or [],
            invoice.amount_credited,
            invoice.amount_paid,
            invoice.amount_written_off,
            invoice.amount_due,
            invoice.status in PAYABLE_STATUSES,
        )
        for invoice in invoices
    ]


def premium_paid_on_term(session: Session, term_id: int) -> int:
    """Premium received for the term (fees are paid first, credit applied counts)."""
    return sum(i.premium_paid for i in as_term_invoices(term_invoices(session, term_id)))


@dataclass
class Locked:
    """The terms' invoices and the payments that paid them, locked, read afresh."""

    batch: Batch
    by_term: dict[int, list[Invoice]]
    allocations: list[rules.Allocated]

    @property
    def invoices(self) -> list[Invoice]:
        return sorted((i for found in self.by_term.values() for i in found), key=lambda i: i.id)

    def allocations_of(self, invoices: Sequence[Invoice]) -> list[rules.Allocated]:
        ids = {i.id for i in invoices}
        return [a for a in self.allocations if a.invoice_id in ids]


def _lock_terms(
    session: Session,
    settings: Settings,
    term_ids: Sequence[int],
    on: date,
    reason: str,
    memo: str,
    also_invoices: Sequence[int] = (),
    also_payments: Sequence[int] = (),
) -> Locked:
    """Lock the payments of the terms' invoices, then the invoices (the engine's lock
    order), and read them again: a payment or invoice that appeared meanwhile is a
    TermChanged (the caller settles again)."""
    found = terms_invoices(session, term_ids)
    ids = sorted({i.id for invs in found.values() for i in invs} | set(also_invoices))
    payments = {a.payment_id for a in allocations_to(session, ids)} | set(also_payments)
    batch = Batch(session, settings, on=on, reason=reason, memo=memo)
    batch.lock_payments(payments)
    batch.lock_invoices(ids)
    found = terms_invoices(session, term_ids)
    now = {i.id for invs in found.values() for i in invs}
    allocations = allocations_to(session, sorted(now | set(also_invoices)))
    if now - set(ids) or {a.payment_id for a in allocations} - payments:
        raise TermChanged("the policy's invoices or payments changed meanwhile; try again")
    return Locked(batch, found, allocations)


# ----------------------------------------------------------------------------- posting


def _credit_and_take_back(
    batch: Batch,
    unbilling: rules.Unbilling,
    *,
    kind: str,
    reason: str,
    cancellation_id: int | None = None,
    endorsement_id: int | None = None,
) -> dict[int, int]:
    """Post an unbilling: credit notes off what is due; allocations taken back (the money
    the payment's again) and credited off their invoices. Returns {invoice: credited}."""
    credited: dict[int, int] = defaultdict(int)
    for invoice_id, amount in sorted(unbilling.credits.items()):
        batch.credit(
            invoice_id, amount, kind=kind, reason=reason,
            cancellation_id=cancellation_id, endorsement_id=endorsement_id,
        )  # fmt: skip
        credited[invoice_id] += amount
    for payment_id, taken in unbilling.take_backs.items():
        written_before = {i: batch.invoices[i].written for i in taken}
        batch.take_back(payment_id, taken, reason="refund", forget_payer=False)
        for invoice_id, amount in sorted(taken.items()):
            # A tolerance write-off of this payment's that the take-back reversed is premium
            # not earned either: credited with it.
            reopened = written_before[invoice_id] - batch.invoices[invoice_id].written
            batch.credit(
                invoice_id, amount + reopened, kind=kind, reason=reason,
                cancellation_id=cancellation_id, endorsement_id=endorsement_id,
                payment_id=payment_id,
            )  # fmt: skip
            credited[invoice_id] += amount + reopened
    return dict(credited)


def add_credit_lines(session: Session, lines: dict[int, list[dict[str, Any]]]) -> None:
    """Append credit-note lines to invoices (a `premium_credit` line per credit note: what
    took their total down, or put it back up)."""
    for invoice_id, extra in sorted(lines.items()):
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        before = [dict(line) for line in (invoice.lines or [])]
        after = before + extra
        session.execute(
            update(Invoice)
            .where(Invoice.id == invoice_id)
            .values(lines=after)
            .execution_options(synchronize_session=False)
        )
        session.expire(invoice)
        audit.record(
            session, "update", "invoices", invoice_id, before={"lines": before},
            after={"lines": after},
        )  # fmt: skip


def _credit_lines(
    credited: dict[int, int], currency: str, description: str
) -> dict[int, list[dict[str, Any]]]:
    return {
        invoice_id: [
            {
                "kind": CREDIT_LINE,
                "description": f"{description} ({format_major(amount, currency)})",
                "amount": -amount,
            }
        ]
        for invoice_id, amount in credited.items()
        if amount
    }


# ----------------------------------------------------------------------------- settle


@dataclass
class Settled:
    """What a settlement did: the rule's figures, the final invoice, the credit notes
    ({invoice: amount}) and the refunds owed (their ids)."""

    settlement: rules.Settlement
    final_invoice_id: int | None = None
    credited: dict[int, int] = field(default_factory=dict)
    refund_ids: list[int] = field(default_factory=list)


def settle(
    session: Session,
    settings: Settings,
    policy: Policy,
    term: PolicyTerm,
    cancellation: Cancellation,
    *,
    on: date,
) -> Settled:
    """Settle the term's account for `cancellation` (flushed, with its earned premium) on
    the business date `on`: final invoice, credit notes, refunds (see `rules.settlement`).
    Flushed, not committed; the caller commits, then calls `send_refunds`."""
    label = "Lapse" if cancellation.kind == "lapse" else "Cancellation"
    memo = (
        f"{label} of {policy.policy_number} effective {cancellation.effective_date.isoformat()}"
        f" ({cancellation.method.replace('_', ' ')})"
    )
    # Later terms (a renewal already billed) are cancelled before they start: earned nothing.
    later = [t for t in policy.terms if t.term_number > term.term_number]
    locked = _lock_terms(
        session, settings, [term.id, *[t.id for t in later]], on, "settlement", memo
    )
    invoices = locked.by_term[term.id]
    plan = rules.settlement(
        cancellation.earned_premium, as_term_invoices(invoices), locked.allocations_of(invoices)
    )
    plans = [plan]
    for later_term in later:
        theirs = locked.by_term[later_term.id]
        if theirs:
            plans.append(
                rules.settlement(0, as_term_invoices(theirs), locked.allocations_of(theirs))
            )
    done = Settled(plan)
    batch = locked.batch
    refunds: dict[int, int] = defaultdict(int)
    for each in plans:
        credited = _credit_and_take_back(
            batch,
            each.unbilling,
            kind=cancellation.kind,
            reason=memo,
            cancellation_id=cancellation.id,
        )
        for invoice_id, amount in credited.items():
            done.credited[invoice_id] = done.credited.get(invoice_id, 0) + amount
        for payment_id, amount in each.refunds.items():
            refunds[payment_id] += amount
    for payment_id, amount in refunds.items():
        batch.refund(
            payment_id, amount, {}, reason=f"Paid beyond the earned premium: {memo}",
            kind="cancellation", cancellation_id=cancellation.id,
        )  # fmt: skip
    batch.write()
    done.refund_ids = list(batch.refund_ids)
    # After the batch is written: issuing publishes INVOICES_ISSUED, whose handler applies
    # the payer's credit through a batch of its own, which must see this one's amounts.
    if plan.final_invoice > 0:
        invoice = issue_one(
            session,
            policy_id=policy.id,
            policyholder_id=policy.policyholder_id,
            currency=policy.currency,
            lines=[
                {
                    "kind": "cancellation",
                    "description": f"Earned premium not billed before: {memo}",
                    "amount": plan.final_invoice,
                }
            ],
            issue_date=on,
            due_date=on,
            settings=settings,
        )
        cancellation.final_invoice_id = invoice.id
        done.final_invoice_id = invoice.id
    add_credit_lines(
        session, _credit_lines(done.credited, policy.currency, f"Unearned premium: {memo}")
    )
    cancellation.refund_due = sum(each.refund_due for each in plans)
    cancellation.balance_due = plan.balance_due
    session.flush()
    log.info(
        "account settled",
        extra={
            "event": "account_settled",
            "policy_id": policy.id,
            "cancellation_id": cancellation.id,
            "earned": plan.earned_premium,
            "final_invoice": plan.final_invoice,
            "credited": sum(done.credited.values()),
            "refunded": sum(refunds.values()),
        },
    )
    return done


def send_refunds(session: Session, settings: Settings, refund_ids: Sequence[int]) -> None:
    """After the commit that owed them: refunds whose money came from Stripe go to Stripe
    (the Stripe feature's handler; a failure leaves them pending for the `send_refunds`
    job, or failed for finance to pay another way)."""
    if refund_ids:
        publish(session, REFUNDS_OWED, refund_ids=list(refund_ids), settings=settings)


# ----------------------------------------------------------------------------- reverse


@dataclass
class Reversed:
    credits_reversed: dict[int, int] = field(default_factory=dict)
    refunds_cancelled: list[int] = field(default_factory=list)
    refunds_kept: list[int] = field(default_factory=list)
    final_invoice_credited: int = 0


def reverse(
    session: Session,
    settings: Settings,
    policy: Policy,
    cancellation: Cancellation,
    *,
    on: date,
) -> Reversed:
    """Undo the settlement of `cancellation` (a reinstatement), as one batch: its credit
    notes reversed (the invoices ask for that premium again); its refunds not paid yet
    cancelled and their money allocated back where it was taken from (a refund already
    paid, or on its way through Stripe, stays paid: its invoices are due again); its final
    invoice's payments taken back (the payer's credit, applied to their next invoice) and
    the invoice credited down to nothing (void). Flushed, not committed."""
    credits = list(
        session.scalars(
            select(InvoiceCredit)
            .where(InvoiceCredit.cancellation_id == cancellation.id, InvoiceCredit.amount > 0)
            .order_by(InvoiceCredit.id)
        )
    )
    reversed_ids = set(
        session.scalars(
            select(InvoiceCredit.reverses_id).where(
                InvoiceCredit.reverses_id.in_([c.id for c in credits])
            )
        )
    )
    credits = [c for c in credits if c.id not in reversed_ids]
    refunds = list(
        session.scalars(
            select(Refund).where(Refund.cancellation_id == cancellation.id).order_by(Refund.id)
        )
    )
    final = cancellation.final_invoice_id
    label = "Lapse" if cancellation.kind == "lapse" else "Cancellation"
    memo = (
        f"Reinstatement of {policy.policy_number}: {label.lower()} effective "
        f"{cancellation.effective_date.isoformat()} reversed"
    )
    locked = _lock_terms(
        session,
        settings,
        [cancellation.term_id],
        on,
        "match",
        memo,
        also_invoices=[c.invoice_id for c in credits] + ([final] if final else []),
        also_payments=[r.payment_id for r in refunds],
    )
    batch = locked.batch
    done = Reversed()
    # Refunds the payer has not received yet come back: Stripe's only when Stripe failed.
    cancellable = {
        r.payment_id: r
        for r in refunds
        if r.status == "failed" or (r.status == "pending" and r.channel != "stripe")
    }
    for refund in refunds:
        if refund.payment_id in cancellable and cancellable[refund.payment_id] is refund:
            batch.cancel_refund(refund.id, refund.payment_id, refund.amount, on)
            done.refunds_cancelled.append(refund.id)
        elif refund.status != "cancelled":
            done.refunds_kept.append(refund.id)
    back: dict[int, dict[int, int]] = defaultdict(dict)
    for credit in reversed(credits):
        invoice = batch.invoices[credit.invoice_id]
        if invoice.status == "void" and invoice.total > 0:
            continue  # voided by hand since: nothing is billed on it any more
        batch.credit(
            credit.invoice_id, -credit.amount, kind="reversal", reason=memo,
            cancellation_id=cancellation.id, payment_id=credit.payment_id,
            reverses_id=credit.id,
        )  # fmt: skip
        done.credits_reversed[credit.invoice_id] = (
            done.credits_reversed.get(credit.invoice_id, 0) + credit.amount
        )
        if credit.payment_id is not None and credit.payment_id in cancellable:
            by_invoice = back[credit.payment_id]
            by_invoice[credit.invoice_id] = by_invoice.get(credit.invoice_id, 0) + credit.amount
    for payment_id, by_invoice in sorted(back.items()):
        left = batch.payments[payment_id].unapplied
        allocations: list[tuple[int, int]] = []
        for invoice_id, amount in sorted(by_invoice.items()):
            # What the refund took back (a tolerance write-off the take-back reversed was
            # credited with it: the payment has only what it refunded to give back).
            amount = min(amount, batch.invoices[invoice_id].due, left)
            if amount > 0:
                allocations.append((invoice_id, amount))
                left -= amount
        if allocations:
            why = batch.allocate(Plan(payment_id, allocations, rule=None))
            if why is not None:
                raise_refusal(why)
    if final is not None and final in batch.invoices:
        final_invoice = batch.invoices[final]
        taken = {a.payment_id: a.amount for a in locked.allocations if a.invoice_id == final}
        for payment_id, amount in sorted(taken.items()):
            batch.take_back(payment_id, {final: amount}, reason="undo", forget_payer=False)
        if final_invoice.due > 0:
            done.final_invoice_credited = final_invoice.due
            batch.credit(
                final, final_invoice.due, kind=cancellation.kind, reason=memo,
                cancellation_id=cancellation.id,
            )  # fmt: skip
    batch.write()
    add_credit_lines(
        session,
        {
            invoice_id: [
                {
                    "kind": CREDIT_LINE,
                    "description": f"{memo} ({format_major(amount, policy.currency)})",
                    "amount": amount,
                }
            ]
            for invoice_id, amount in done.credits_reversed.items()
        },
    )
    if done.final_invoice_credited:
        add_credit_lines(
            session,
            _credit_lines({final: done.final_invoice_credited}, policy.currency, memo)
            if final is not None
            else {},
        )
    session.flush()
    return done


# ----------------------------------------------------------------------------- premium cut


def credit_premium_cut(
    session: Session,
    settings: Settings,
    *,
    installment_id: int,
    endorsement_id: int,
    effective: date,
    on: date,
) -> int:
    """An endorsement's premium cut with nothing left to bill (its adjustment installment,
    negative, is never invoiced): taken off what the term's open invoices still ask for,
    then off premium already paid, which becomes the payer's credit. The installment is
    then settled (`invoiced`: billed at once, as a credit); what nothing billed could take
    stays on it, to be billed (credited) at once. Returns the amount credited."""
    installment = session.get(Installment, installment_id)
    assert installment is not None and installment.amount < 0
    policy = session.get(Policy, installment.policy_id)
    assert policy is not None
    memo = f"Premium cut: endorsement of {policy.policy_number} effective {effective.isoformat()}"
    locked = _lock_terms(session, settings, [installment.term_id], on, "settlement", memo)
    cut = -installment.amount
    invoices = locked.by_term[installment.term_id]
    unbilling = rules.premium_cut(cut, as_term_invoices(invoices), locked.allocations_of(invoices))
    credited = _credit_and_take_back(
        locked.batch, unbilling, kind="endorsement", reason=memo, endorsement_id=endorsement_id
    )
    locked.batch.write()
    add_credit_lines(session, _credit_lines(credited, policy.currency, memo))
    done = unbilling.credited + unbilling.taken_back
    if done >= cut:
        installment.status = "invoiced"
    else:
        installment.amount = -(cut - done)
    session.flush()
    return done
