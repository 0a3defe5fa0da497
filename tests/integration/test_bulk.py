"""db.bulk.insert_rows: every kind of value arrives as given (binary COPY on PostgreSQL)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from premium_billing.db.bulk import insert_rows
from premium_billing.ledger.models import JournalEntry
from premium_billing.payments.models import Payment


def _payment(n: int, evidence: object) -> dict[str, object]:
    return {
        "source": "manual",
        "method": "check",
        "external_id": f"chk-{n}",
        "amount": 10**12 + n,  # beyond 32 bits
        "currency": "USD",
        "received_on": date(2026, 2, n),
        "payer_name": 'Zoë O\'Brien, "Jr"\t\\ \N{EURO SIGN}' if n == 1 else None,
        "reference": "line\nbreak" if n == 1 else "",
        "policyholder_id": None,
        "payer_from_match": n == 1,
        "amount_allocated": 0,
        "amount_refunded": 0,
        "amount_reversed": 0,
        "amount_unapplied": 10**12 + n,
        "status": "unapplied",
        "match_evidence": evidence,
        "receipt_entry_id": None,
    }


def test_insert_rows_writes_each_value_as_given(db):
    evidence = {"rule": "x", "ids": [1, 2], "text": 'a "quoted" \N{EURO SIGN}'}
    with db.session() as session:
        ids = insert_rows(
            session, Payment.__table__, [_payment(1, evidence), _payment(2, None)], ids=True
        )
        entries = insert_rows(
            session, JournalEntry.__table__, [{"kind": "payment_received",
                                               "occurred_on": date(2026, 2, 3), "memo": None}]
        )  # fmt: skip
        session.commit()
    assert len(ids) == 2 and ids[0] != ids[1] and entries == []
    with db.session() as session:
        first, second = (session.get(Payment, i) for i in ids)
        assert first is not None and second is not None
        for row, stored in ((_payment(1, evidence), first), (_payment(2, None), second)):
            assert {k: getattr(stored, k) for k in row} == row
            assert stored.created_at is not None and stored.updated_at is not None
        (entry,) = session.scalars(select(JournalEntry)).all()
        assert (entry.kind, entry.occurred_on, entry.memo) == (
            "payment_received", date(2026, 2, 3), None,
        )  # fmt: skip
        assert entry.created_at is not None
