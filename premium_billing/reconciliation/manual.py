"""A person's matches: matching a payment to invoices by hand, and undoing a match.

Each use case is ONE transaction: the posting (through the posting engine, not committed)
and the reconciliation bookkeeping it implies commit together, or nothing does. A manual
match teaches the payer link (normalised bank account and name → policyholder) and takes the
payment off the suspense queue; an undo puts the payment back in the queue `held` (runs no
longer auto-post it: it waits for a person). Were the bookkeeping a second transaction, a
failure there would leave an undone payment un-held, and the next run would post again the
match a person just undid.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.errors import NotFound
from premium_billing.payments import posting
from premium_billing.payments.models import Payment
from premium_billing.reconciliation.matching import normalize_account, normalize_name
from premium_billing.reconciliation.models import BankLine, PayerLink, SuspenseItem


def match_manually(
    session: Session,
    settings: Settings,
    payment_id: int,
    requested: Sequence[tuple[int, int]],
    *,
    auto_write_off: bool = True,
    on: date | None = None,
) -> Payment:
    """Allocate the payment as a person asked ([(invoice id, amount)], rule `manual`), learn
    the payer link and take the payment off the suspense queue: one transaction. Refusals
    as `posting.allocate` raises them (404, 409, 422 naming the field)."""
    try:
        posting.allocate(
            session,
            settings,
            payment_id,
            requested,
            reason="manual",
            rule="manual",
            auto_write_off=auto_write_off,
            on=on,
            commit=False,
        )
        learn_payer(session, payment_id)
        posting.finish(session, commit=True)
    except BaseException:
        session.rollback()
        raise
    return posting.get_fresh(session, payment_id)


def undo_match(
    session: Session, settings: Settings, payment_id: int, *, on: date | None = None
) -> Payment:
    """Undo every allocation of the payment (its invoices re-open, the money is unapplied
    again, in suspense when the match had named the payer) and put it back in the suspense
    queue, held for a person: one transaction."""
    try:
        query = select(Payment.match_rule).where(Payment.id == payment_id)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update()  # the payment first, as the posting locks it
        found = session.execute(query).first()
        if found is None:
            raise NotFound("payment not found")
        posting.unallocate(session, settings, payment_id, on=on, commit=False)
        hold(session, payment_id, found[0])
        posting.finish(session, commit=True)
    except BaseException:
        session.rollback()
        raise
    return posting.get_fresh(session, payment_id)


def learn_payer(session: Session, payment_id: int) -> int:
    """A confirmed manual match teaches the payer link: the payment's bank account and
    normalised payer name → its policyholder; a payment no longer unapplied leaves the
    suspense queue. Not committed. Returns how many links are new."""
    payment = posting.get_fresh(session, payment_id)
    if payment.policyholder_id is None:
        return 0
    keys: list[tuple[str, str]] = []
    account = session.scalar(
        select(BankLine.payer_account).where(
            BankLine.payment_id == payment_id, BankLine.kind == "payment"
        )
    )
    if account and normalize_account(account):
        keys.append((normalize_account(account), "payer_account"))
    if payment.payer_name and normalize_name(payment.payer_name):
        keys.append((normalize_name(payment.payer_name), "payer_name"))
    added = 0
    for key, kind in keys:
        exists = session.scalar(
            select(PayerLink.id).where(
                PayerLink.key == key[:255], PayerLink.policyholder_id == payment.policyholder_id
            )
        )
        if exists is None:
            session.add(
                PayerLink(
                    key=key[:255], kind=kind, policyholder_id=payment.policyholder_id,
                    payment_id=payment_id,
                )
            )  # fmt: skip
            added += 1
    if payment.status != "unapplied":
        session.execute(delete(SuspenseItem).where(SuspenseItem.payment_id == payment_id))
    session.flush()
    return added


def hold(session: Session, payment_id: int, undone_rule: str | None) -> None:
    """An undone match puts the payment back in the suspense queue, held for a person (runs
    do not auto-post it again). Not committed."""
    payment = posting.get_fresh(session, payment_id)
    if payment.status != "unapplied":
        return
    item = session.get(SuspenseItem, payment_id)
    reason = f"match undone by hand (was {undone_rule or 'unknown'}): waits for a person"
    if item is None:
        session.add(
            SuspenseItem(
                payment_id=payment_id, outcome="suspense", reason=reason, score=0.0,
                candidates=[], held=True,
            )
        )  # fmt: skip
    else:
        item.held = True
        item.reason = reason
    session.flush()


__all__ = ["hold", "learn_payer", "match_manually", "undo_match"]
