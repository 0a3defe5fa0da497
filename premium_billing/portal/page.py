"""What the portal page shows a policyholder: read-only, a handful of queries bounded by
the policyholder's own rows (their policies, open invoices, recent payments, refunds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from premium_billing.accounts.statement_of_account import statement
from premium_billing.clock import business_date
from premium_billing.collections.views import delinquency
from premium_billing.config import Settings
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES, format_reference, payment_reference
from premium_billing.payments.models import Allocation, Payment, Refund
from premium_billing.policies.models import Policy, Policyholder, PolicyTerm
from premium_billing.portal.models import PortalCheckout
from premium_billing.portal.rules import (
    LIVE_STATUSES,
    OpenInvoice,
    OverduePayment,
    autopay_state,
    days_overdue,
    is_overdue,
    overdue_payments,
)
from premium_billing.stripe_billing.models import StripeCustomer

HISTORY = 24  # payments and paid invoices shown, newest first


@dataclass(frozen=True)
class Pet:
    name: str | None
    species: str | None
    breed: str | None
    date_of_birth: date | None
    description: str
    annual_premium: int


@dataclass(frozen=True)
class PolicyView:
    id: int
    number: str
    product: str
    status: str
    currency: str
    billing_plan: str
    cover_from: date
    cover_to: date
    annual_premium: int
    autopay: bool
    lines: list[Pet]
    amount_overdue: int = 0
    # What happens next (the delinquency step and its date, the day the cover lapses
    # unpaid): from the collections feature (`what_happens_next`); None: nothing overdue.
    next_step: dict[str, Any] | None = None


@dataclass(frozen=True)
class InvoiceView:
    id: int
    number: str
    policy_number: str
    currency: str
    issue_date: date
    due_date: date
    total: int
    amount_due: int
    status: str
    reference: str  # RF creditor reference, printed form
    overdue: bool
    days_overdue: int


@dataclass(frozen=True)
class PaymentView:
    id: int
    received_on: date
    amount: int
    currency: str
    method: str
    status: str
    invoices: list[str]


@dataclass(frozen=True)
class RefundView:
    id: int
    amount: int
    currency: str
    channel: str
    status: str
    created_on: date


@dataclass
class PortalPage:
    holder_id: int
    name: str
    insurer: str
    today: date
    policies: list[PolicyView]
    open_invoices: list[InvoiceView]
    paid_invoices: list[InvoiceView]
    payments: list[PaymentView]
    refunds: list[RefundView]
    due: dict[str, int]  # per currency: what the open invoices ask for
    credit: dict[str, int]  # per currency: payments' money not applied to any invoice
    currencies: list[str]
    overdue: list[OverduePayment]
    autopay: str  # on | off | waiting_for_card
    statement_from: date
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def amount_overdue(self) -> dict[str, int]:
        return {o.currency: o.amount for o in self.overdue}


def holder_exists(session: Session, holder_id: int) -> bool:
    return session.get(Policyholder, holder_id) is not None


def _invoice_view(invoice: Invoice, policy_number: str, today: date) -> InvoiceView:
    seen = OpenInvoice(
        invoice.id, invoice.currency, invoice.status, invoice.due_date, invoice.amount_due
    )
    return InvoiceView(
        id=invoice.id,
        number=invoice.number,
        policy_number=policy_number,
        currency=invoice.currency,
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        total=invoice.total,
        amount_due=invoice.amount_due,
        status=invoice.status,
        reference=format_reference(payment_reference(invoice.number)),
        overdue=is_overdue(seen, today),
        days_overdue=days_overdue(invoice.due_date, today) if is_overdue(seen, today) else 0,
    )


# What the policyholder reads of each collections step (the next one to come).
NEXT_STEP_TEXT = {
    "reminder": "a payment reminder",
    "grace_notice": "the grace period starts",
    "final_notice": "a final notice",
    "late_fee": "a late fee is charged",
    "lapse": "the cover lapses",
}


def what_happens_next(
    session: Session, settings: Settings, policies: list[Policy], today: date
) -> dict[int, dict[str, Any]]:
    """What happens next on each policy with something overdue (or delinquent): its state,
    the next collections step and its date, and the day its cover lapses unpaid, as the
    collections feature sees them today (`collections.views.delinquency`, the same as
    `GET /policies/{id}/delinquency`). {policy id: {state, next_step, on, lapse_on, text}}."""
    out: dict[int, dict[str, Any]] = {}
    for policy in policies:
        if policy.status not in ("active", "past_due", "in_grace", "lapsed"):
            continue
        found = delinquency(session, settings, policy.id, today)
        if not found["amount_overdue"] and found["state"] not in ("past_due", "in_grace"):
            continue
        coming = [
            s for s in found["steps"] if s["status"] in ("scheduled", "due") and s["on"] >= today
        ]
        step = min(coming, key=lambda s: s["on"]) if coming else None
        lapse_on = found["lapse_on"]
        if step is not None:
            what = NEXT_STEP_TEXT.get(step["step"], step["step"])
            text = f"Next: {what} on {step['on'].isoformat()}"
        elif found["state"] == "lapsed":
            text = "The cover has lapsed: pay what is overdue to reinstate it"
        else:
            text = "Pay what is overdue to keep the cover"
        if lapse_on is not None and found["state"] != "lapsed":
            when = f"on {lapse_on.isoformat()}" if lapse_on >= today else "now"
            text += f"; unpaid, the cover lapses {when}"
        out[policy.id] = {
            "state": found["state"],
            "next_step": None if step is None else step["step"],
            "on": None if step is None else step["on"],
            "lapse_on": lapse_on,
            "text": text,
        }
    return out


def portal_page(session: Session, settings: Settings, holder_id: int) -> PortalPage:
    """Everything the portal shows the policyholder `holder_id` (who must exist)."""
    holder = session.get(Policyholder, holder_id)
    assert holder is not None
    today = business_date(settings.timezone)
    policies = list(
        session.scalars(
            select(Policy)
            .where(Policy.policyholder_id == holder_id)
            .options(selectinload(Policy.terms).selectinload(PolicyTerm.lines))
            .order_by(Policy.id)
        )
    )
    numbers = {p.id: p.policy_number for p in policies}
    open_rows = list(
        session.scalars(
            select(Invoice)
            .where(
                Invoice.policyholder_id == holder_id,
                Invoice.status.in_(PAYABLE_STATUSES),
                Invoice.amount_due > 0,
            )
            .order_by(Invoice.due_date, Invoice.id)
        )
    )
    paid_rows = list(
        session.scalars(
            select(Invoice)
            .where(Invoice.policyholder_id == holder_id, Invoice.status == "paid")
            .order_by(Invoice.due_date.desc(), Invoice.id.desc())
            .limit(HISTORY)
        )
    )
    open_invoices = [_invoice_view(i, numbers.get(i.policy_id, ""), today) for i in open_rows]
    overdue_by_policy: dict[int, int] = {}
    for row, view in zip(open_rows, open_invoices, strict=True):
        if view.overdue:
            overdue_by_policy[row.policy_id] = overdue_by_policy.get(row.policy_id, 0) + (
                row.amount_due
            )
    next_steps = what_happens_next(session, settings, policies, today)
    policy_views = []
    for policy in policies:
        term = policy.terms[-1] if policy.terms else None
        policy_views.append(
            PolicyView(
                id=policy.id,
                number=policy.policy_number,
                product=policy.product,
                status=policy.status,
                currency=policy.currency,
                billing_plan=policy.billing_plan,
                cover_from=term.start_date if term else policy.effective_date,
                cover_to=term.end_date if term else policy.expiration_date,
                annual_premium=term.annual_premium if term else 0,
                autopay=policy.autopay,
                lines=[
                    Pet(
                        line.pet_name,
                        line.pet_species,
                        line.pet_breed,
                        line.pet_date_of_birth,
                        line.description,
                        line.annual_premium,
                    )
                    for line in (term.lines if term else [])
                ],
                amount_overdue=overdue_by_policy.get(policy.id, 0),
                next_step=next_steps.get(policy.id),
            )
        )
    payment_rows = list(
        session.scalars(
            select(Payment)
            .where(Payment.policyholder_id == holder_id)
            .order_by(Payment.received_on.desc(), Payment.id.desc())
            .limit(HISTORY)
        )
    )
    paid_numbers: dict[int, list[str]] = {}
    if payment_rows:
        for payment_id, number in session.execute(
            select(Allocation.payment_id, Invoice.number)
            .join(Invoice, Invoice.id == Allocation.invoice_id)
            .where(Allocation.payment_id.in_([p.id for p in payment_rows]))
            .order_by(Allocation.id)
        ):
            names = paid_numbers.setdefault(payment_id, [])
            if number not in names:
                names.append(number)
    refunds = list(
        session.scalars(
            select(Refund)
            .where(Refund.policyholder_id == holder_id, Refund.status.in_(("pending", "failed")))
            .order_by(Refund.id)
        )
    )
    due: dict[str, int] = {}
    for invoice in open_rows:
        due[invoice.currency] = due.get(invoice.currency, 0) + invoice.amount_due
    credit = {
        currency: int(amount)
        for currency, amount in session.execute(
            select(Payment.currency, func.sum(Payment.amount_unapplied))
            .where(Payment.policyholder_id == holder_id, Payment.amount_unapplied > 0)
            .group_by(Payment.currency)
            .order_by(Payment.currency)
        ).all()
    }
    card_saved = (
        session.scalar(
            select(StripeCustomer.payment_method_id).where(
                StripeCustomer.policyholder_id == holder_id
            )
        )
        is not None
    )
    live = [p.autopay for p in policies if p.status in LIVE_STATUSES]
    seen = [OpenInvoice(i.id, i.currency, i.status, i.due_date, i.amount_due) for i in open_rows]
    return PortalPage(
        holder_id=holder_id,
        name=holder.name,
        insurer=settings.insurer_name,
        today=today,
        policies=policy_views,
        open_invoices=open_invoices,
        paid_invoices=[_invoice_view(i, numbers.get(i.policy_id, ""), today) for i in paid_rows],
        payments=[
            PaymentView(
                p.id,
                p.received_on,
                p.amount,
                p.currency,
                p.method,
                p.status,
                paid_numbers.get(p.id, []),
            )
            for p in payment_rows
        ],
        refunds=[
            RefundView(r.id, r.amount, r.currency, r.channel, r.status, r.created_at.date())
            for r in refunds
        ],
        due=due,
        credit=credit,
        currencies=sorted({p.currency for p in policies} | {i.currency for i in open_rows}),
        overdue=overdue_payments(seen, today),
        autopay=autopay_state(live, card_saved),
        statement_from=min((p.effective_date for p in policies), default=today),
    )


def statement_of_account(
    session: Session, settings: Settings, holder_id: int
) -> tuple[dict[str, Any], date]:
    """The policyholder's statement of account from their first policy's start to the
    business date (`accounts.statement_of_account.statement`), and that business date."""
    today = business_date(settings.timezone)
    start = session.scalar(
        select(Policy.effective_date)
        .where(Policy.policyholder_id == holder_id)
        .order_by(Policy.effective_date)
        .limit(1)
    )
    start = min(start or today, today)
    return statement(session, holder_id, start, today), today


@dataclass(frozen=True)
class CheckoutResult:
    """What the page Stripe returns the policyholder to shows: the Checkout's purpose, the
    invoices it pays with their state now, and whether the webhook has posted it yet."""

    purpose: str
    invoices: list[InvoiceView]
    amount: int | None
    currency: str | None
    done: bool  # every invoice paid (a payment), or the card saved (autopay)


def checkout_result(
    session: Session, settings: Settings, holder_id: int, session_id: str
) -> CheckoutResult | None:
    """The result of a Checkout the portal started for this policyholder (None: not theirs
    or not ours)."""
    row = session.scalar(
        select(PortalCheckout).where(
            PortalCheckout.session_id == session_id, PortalCheckout.policyholder_id == holder_id
        )
    )
    if row is None:
        return None
    today = business_date(settings.timezone)
    if row.purpose == "autopay":
        saved = session.scalar(
            select(StripeCustomer.payment_method_id).where(
                StripeCustomer.policyholder_id == holder_id
            )
        )
        return CheckoutResult("autopay", [], None, None, saved is not None)
    ids = [int(i) for i in row.invoice_ids]
    invoices = list(session.scalars(select(Invoice).where(Invoice.id.in_(ids))))
    numbers = dict(
        session.execute(
            select(Policy.id, Policy.policy_number).where(
                Policy.id.in_({i.policy_id for i in invoices})
            )
        ).all()
    )
    views = sorted(
        (_invoice_view(i, numbers.get(i.policy_id, ""), today) for i in invoices),
        key=lambda v: (v.due_date, v.id),
    )
    done = bool(views) and all(v.amount_due == 0 for v in views)
    return CheckoutResult(row.purpose, views, row.amount, row.currency, done)
