"""A database to upgrade from an older revision: an empty SQLite file, or a PostgreSQL
database of its own (dropped after the test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from premium_billing.db.engine import normalize_url

from ..conftest import PG_URL


@pytest.fixture
def empty_url(backend: str, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"pb_upgrade_{uuid.uuid4().hex[:8]}"
    base = normalize_url(PG_URL).rpartition("/")[0]
    admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
