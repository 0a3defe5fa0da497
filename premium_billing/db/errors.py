"""Tell which constraint an IntegrityError broke, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError


def violated(error: IntegrityError, constraint: str, sqlite_columns: str) -> bool:
    """True when `error` broke `constraint` (PostgreSQL name) / `sqlite_columns` ('t.col')."""
    orig = error.orig
    diag = getattr(orig, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return bool(diag.constraint_name == constraint)
    return sqlite_columns in str(orig)
