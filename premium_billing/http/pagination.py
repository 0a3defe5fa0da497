"""Cursor pagination: `?limit=&starting_after=<id>`, ascending by id."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

from premium_billing.errors import Unprocessable
from premium_billing.http.ids import parse_id

T = TypeVar("T")


def paginate(
    session: Session, stmt: Select[Any], id_column: Any, kind: str, args: dict[str, Any]
) -> tuple[list[Any], bool]:
    """One page of `stmt` after the cursor, and whether more follow."""
    cursor = args.get("starting_after")
    if cursor is not None:
        number = parse_id(kind, cursor)
        if number is None:
            raise Unprocessable(f"Not a valid {kind} id.", field="starting_after")
        stmt = stmt.where(id_column > number)
    limit: int = args["limit"]
    rows = list(session.scalars(stmt.order_by(id_column).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
