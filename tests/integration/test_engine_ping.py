"""A pooled PostgreSQL connection is pinged before use only after it sat idle
(premium_billing.db.engine): one the server closed meanwhile is replaced, not handed out;
one used a moment ago is not pinged (no round trip per checkout)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from premium_billing.db import engine as engine_module
from premium_billing.db.engine import make_engine, normalize_url

pytestmark = pytest.mark.postgresql_only


def _backend_pid(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(url: str, pid: int) -> None:
    admin = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    admin.dispose()


def test_an_idle_connection_the_server_closed_is_replaced(
    database_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = _backend_pid(engine)
        _terminate(database_url, first)
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # "idle long"
        second = _backend_pid(engine)
        assert second != first
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(
    database_url: str, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a ping, a connection closed under it fails its one statement; the pool is
    then dropped and the next checkout works."""
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = _backend_pid(engine)
        _terminate(database_url, first)
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
        with pytest.raises(OperationalError):
            _backend_pid(engine)
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()
