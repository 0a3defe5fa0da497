"""Database access: engine, sessions, models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from premium_billing.db.engine import make_engine, make_sessionmaker
from premium_billing.db.hooks import HANDLERS, Handlers


class Database:
    """The engine and session factory of one database URL."""

    def __init__(self, url: str, handlers: Handlers | None = None) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        # Every session carries the handlers of domain events (see db.hooks).
        self.handlers: Handlers = dict(handlers or {})
        self.sessionmaker: sessionmaker[Session] = make_sessionmaker(
            self.engine, info={HANDLERS: self.handlers}
        )
        self.on_dispose: list[Callable[[], None]] = []  # e.g. stop background threads

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that rolls back whatever was not committed when the block ends.

        close() (not rollback()) keeps what was loaded readable on the detached objects.
        """
        session = self.sessionmaker()
        try:
            yield session
        finally:
            session.close()

    def dispose(self) -> None:
        for stop in self.on_dispose:
            stop()
        self.engine.dispose()
