"""Rows a feature collects during a session's transaction and writes just before its commit
(the audit trail's rows, the journal's day totals): kept in the session's `info`, dropped
by a rollback (of a savepoint: what was queued inside it) and by a transaction that ends
without its commit."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.orm import Session


class TransactionQueue:
    def __init__(self, name: str) -> None:
        self.items_key = f"premium_billing.{name}"
        self.marks_key = f"premium_billing.{name}.savepoints"

    def items(self, session: Session) -> list[Any]:
        """This session's queue. Kept with the session's id: a session made with a copy of
        another's `info` starts with an empty queue of its own rather than sharing the
        other's list."""
        owner, queue = cast(
            tuple[int | None, list[Any] | None], session.info.get(self.items_key, (None, None))
        )
        if owner != id(session) or queue is None:
            queue = []
            session.info[self.items_key] = (id(session), queue)
        return queue

    def take(self, session: Session) -> list[Any]:
        """What is queued, the queue emptied (before the commit writes it)."""
        owner, queue = session.info.pop(self.items_key, (None, None))
        session.info.pop(self.marks_key, None)
        return queue if owner == id(session) and queue else []

    def discard(self, session: Session, previous_transaction: Any) -> None:
        """after_soft_rollback: a rollback drops what was queued since the transaction (or
        savepoint) began."""
        marks: dict[int, int] = session.info.get(self.marks_key, {})
        if previous_transaction.nested and id(previous_transaction) in marks:
            del self.items(session)[marks.pop(id(previous_transaction)) :]
            return
        session.info.pop(self.items_key, None)
        session.info.pop(self.marks_key, None)

    def mark_savepoint(self, session: Session, transaction: Any) -> None:
        """after_transaction_create: where a savepoint began in the queue."""
        if transaction.nested:
            session.info.setdefault(self.marks_key, {})[id(transaction)] = len(self.items(session))

    def forget(self, session: Session, transaction: Any) -> None:
        """after_transaction_end: a session's transaction ended without its commit
        (closed): nothing stays queued."""
        if transaction.parent is None and not transaction.nested:
            session.info.pop(self.items_key, None)
            session.info.pop(self.marks_key, None)
