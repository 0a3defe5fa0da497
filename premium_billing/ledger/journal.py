"""The journal: every money movement is one balanced entry, written here."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from sqlalchemy.orm import Session

from premium_billing.ledger import rules as ledger
from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.ledger.rules import Posting


def open_entry(
    session: Session,
    kind: str,
    occurred_on: date,
    *,
    memo: str | None = None,
    job_run_id: int | None = None,
) -> JournalEntry:
    """An entry of a checked kind, flushed (it has an id) and without lines yet: a
    set-based batch points its rows at it, then adds its legs with `add_legs`."""
    entry = JournalEntry(
        kind=ledger.check_kind(kind), occurred_on=occurred_on, memo=memo, job_run_id=job_run_id
    )
    session.add(entry)
    session.flush()
    return entry


def add_legs(session: Session, entry_id: int, postings: Iterable[Posting]) -> None:
    """The entry's balanced legs (checked here on every database; on PostgreSQL also by a
    deferred constraint trigger at commit). Flushed, not committed."""
    legs = ledger.check_entry(postings)
    session.add_all(
        JournalLine(
            entry_id=entry_id,
            account=leg.account,
            currency=leg.currency,
            amount=leg.amount,
            invoice_id=leg.invoice_id,
            payment_id=leg.payment_id,
            policyholder_id=leg.policyholder_id,
        )
        for leg in legs
    )
    session.flush()


def post(
    session: Session,
    kind: str,
    occurred_on: date,
    postings: Iterable[Posting],
    *,
    memo: str | None = None,
    job_run_id: int | None = None,
) -> JournalEntry:
    """Write one balanced entry of a checked kind. Flushed, not committed."""
    legs = ledger.check_entry(postings)
    entry = open_entry(session, kind, occurred_on, memo=memo, job_run_id=job_run_id)
    add_legs(session, entry.id, legs)
    return entry
