"""One database session per request, closed (and anything uncommitted rolled back) at the end."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from premium_billing.db import Database


def database() -> Database:
    db: Database = current_app.extensions["premium_billing.db"]
    return db


def db_session() -> Session:
    if "db_session" not in g:
        g.db_session = database().sessionmaker()
    session: Session = g.db_session
    return session


def register_session(app: Flask) -> None:
    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()
