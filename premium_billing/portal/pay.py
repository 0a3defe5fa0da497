"""What the portal's forms do: Pay now (a Checkout for one invoice), Pay everything overdue
(one Checkout for the sum of the overdue invoices in a currency: its payment is posted to
each through the one engine), and autopay on (a setup-mode Checkout) or off. Each public
function is one use case; the Checkouts are Stripe's (`stripe_billing.payments`), stored
with the invoices they pay so the return page can show the result."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.errors import Conflict, NotFound
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES
from premium_billing.policies.models import Policy
from premium_billing.portal.models import PortalCheckout
from premium_billing.portal.rules import LIVE_STATUSES, OpenInvoice, overdue_payments
from premium_billing.stripe_billing import payments as stripe_payments


@dataclass(frozen=True)
class ReturnUrls:
    """Where Stripe sends the policyholder back ({CHECKOUT_SESSION_ID} in `success`)."""

    success: str
    cancel: str


def _remember(
    session: Session,
    holder_id: int,
    session_id: str,
    purpose: str,
    invoice_ids: Sequence[int],
    amount: int | None,
    currency: str | None,
) -> None:
    """Store which invoices the Checkout pays (once: a Checkout offered again is the same)."""
    make = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        make(PortalCheckout)
        .values(
            session_id=session_id,
            policyholder_id=holder_id,
            purpose=purpose,
            invoice_ids=list(invoice_ids),
            amount=amount,
            currency=currency,
        )
        .on_conflict_do_nothing(index_elements=["session_id"])
    )
    session.commit()


def pay_invoice(
    session: Session, settings: Settings, holder_id: int, invoice_id: int, urls: ReturnUrls
) -> str:
    """Pay now: the Checkout URL for one of the policyholder's invoices (another's, or none:
    NotFound; nothing due: Conflict)."""
    invoice = session.get(Invoice, invoice_id)
    if invoice is None or invoice.policyholder_id != holder_id:
        raise NotFound("invoice not found")
    result = stripe_payments.start_checkout(
        session, settings, invoice_id, success_url=urls.success, cancel_url=urls.cancel
    )
    _remember(
        session, holder_id, result.id, "invoice", [invoice_id], invoice.amount_due,
        invoice.currency,
    )  # fmt: skip
    return result.url


def pay_overdue(
    session: Session, settings: Settings, holder_id: int, currency: str, urls: ReturnUrls
) -> str:
    """Pay everything overdue in `currency`: one Checkout for the sum of the policyholder's
    overdue invoices (`rules.overdue_payments`), each paid what it has due. Nothing overdue
    in that currency: Conflict."""
    today = business_date(settings.timezone)
    rows = session.execute(
        select(
            Invoice.id, Invoice.currency, Invoice.status, Invoice.due_date, Invoice.amount_due
        ).where(
            Invoice.policyholder_id == holder_id,
            Invoice.currency == currency,
            Invoice.status.in_(PAYABLE_STATUSES),
            Invoice.amount_due > 0,
            Invoice.due_date < today,
        )
    ).all()
    plans = overdue_payments([OpenInvoice(*row) for row in rows], today)
    if not plans:
        raise Conflict(f"nothing is overdue in {currency}")
    (plan,) = plans
    result, amount = stripe_payments.start_checkout_many(
        session, settings, plan.invoice_ids, success_url=urls.success, cancel_url=urls.cancel
    )
    _remember(session, holder_id, result.id, "overdue", plan.invoice_ids, amount, currency)
    return result.url


def autopay_on(session: Session, settings: Settings, holder_id: int, urls: ReturnUrls) -> str:
    """Autopay on: the policyholder's live policies are marked autopay, and a setup-mode
    Checkout saves their card (the autopay job charges only once a card is saved). Returns
    the Checkout URL. No live policy: Conflict."""
    _set_autopay(session, holder_id, True)
    session.commit()
    result = stripe_payments.start_autopay_setup(
        session, settings, holder_id, success_url=urls.success, cancel_url=urls.cancel
    )
    _remember(session, holder_id, result.id, "autopay", [], None, None)
    return result.url


def autopay_off(session: Session, holder_id: int) -> None:
    """Autopay off: no live policy of the policyholder is charged automatically any more
    (the saved card stays with Stripe for a later "on")."""
    _set_autopay(session, holder_id, False)
    session.commit()


def _set_autopay(session: Session, holder_id: int, on: bool) -> None:
    live = list(
        session.scalars(
            select(Policy.id).where(
                Policy.policyholder_id == holder_id, Policy.status.in_(LIVE_STATUSES)
            )
        )
    )
    if not live:
        raise Conflict("no policy in force to pay automatically")
    # Loaded and changed one by one (a handful): the audit trail records each change.
    for policy in session.scalars(select(Policy).where(Policy.id.in_(live)).order_by(Policy.id)):
        policy.autopay = on
    session.flush()


__all__ = ["ReturnUrls", "autopay_off", "autopay_on", "pay_invoice", "pay_overdue"]
