"""Bulk writes for set-based services: COPY on PostgreSQL, executemany elsewhere.

SQLAlchemy's executemany sends one INSERT per row to PostgreSQL (pipelined, but still parsed
and executed row by row); COPY streams the rows into one statement, an order of magnitude
faster for the tens of thousands of journal lines a batch can write. Ids, when the caller
needs them, are drawn from the table's sequence first, so COPY can carry them.
Runs in the session's transaction; nothing is committed here.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Table,
    any_,
    bindparam,
    column,
    func,
    insert,
    select,
    text,
    type_coerce,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import JSON

from premium_billing.db.types import utcnow

_PG_DIALECT = postgresql.dialect()


def custom_plans(session: Session) -> None:
    """For the rest of this transaction, plan every statement for its parameters (PostgreSQL).

    psycopg prepares a statement run five times, and PostgreSQL may then keep a generic plan
    made from the table's statistics. A bulk import or run grows its tables by millions of
    rows in one transaction, so a plan made when they looked empty (a sequential scan) turns
    each batch's probe into a scan of everything written so far: quadratic.

    It also re-plans every query a trigger runs, among them each row's foreign-key checks in
    a COPY of `insert_rows` (one plan per row and key: measured, about half of what a COPY
    of bank lines or journal lines costs the server). A probe whose every plan is an index
    probe (see `statement_import._SEEN_PG`) does not need it."""
    if _is_pg(session):
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def cached_plans(session: Session) -> None:
    """Undo `custom_plans` for the rest of this transaction (PostgreSQL): before a COPY, whose
    rows' foreign-key checks would else each be planned anew (their plans are PK probes)."""
    if _is_pg(session):
        session.execute(text("SET LOCAL plan_cache_mode = auto"))


def any_of(session: Session, column: Any, ids: Sequence[int]) -> Any:
    """`column IN ids` as `column = ANY(:array)` on PostgreSQL: one parameter, one statement
    text (an IN list of a thousand ids is a thousand parameters and a text never seen
    before). Elsewhere a plain IN."""
    if not _is_pg(session):
        return column.in_(list(ids))
    return column == any_(bindparam(None, list(ids), type_=ARRAY(BigInteger)))


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _defaults(table: Table, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The columns to write: those the rows give, plus timestamp columns the model fills."""
    columns = list(rows[0])
    for name in ("created_at", "updated_at"):
        if name in table.c and name not in columns:
            columns.append(name)
    return columns


def insert_rows(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], *, ids: bool = False
) -> list[int]:
    """Insert `rows` (dicts with the same keys) into `table`; returns their new ids, in
    order, when `ids` is true (else an empty list)."""
    if not rows:
        return []
    if not _is_pg(session):
        if ids:
            stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
            return list(session.scalars(stmt, list(rows)).all())
        session.execute(insert(table), list(rows))
        return []
    columns = _defaults(table, rows)
    new_ids = reserve_ids(session, table, len(rows)) if ids else []
    given = list(rows[0])
    values = _getter(given)
    stamps = (utcnow(),) * (len(columns) - len(given))  # created_at, updated_at
    json_at = [i for i, name in enumerate(given) if _is_json(table, name)]
    names = ["id", *columns] if ids else columns
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    # Binary: the values are written by psycopg's C dumpers as the columns' types (no text
    # to format here nor to parse on the server); JSON goes as its text.
    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([_pg_type(table, name) for name in names])
        for index, row in enumerate(rows):
            record = values(row)
            if json_at and any(record[i] is not None for i in json_at):
                record = tuple(
                    json.dumps(v) if i in json_at and v is not None else v
                    for i, v in enumerate(record)
                )
            copy.write_row((new_ids[index], *record, *stamps) if ids else (*record, *stamps))
    return new_ids


_RESERVE = text(
    # The sequence looked up once (OFFSET 0 keeps the subquery from being pulled up), not a
    # pg_depend scan per id.
    "SELECT nextval(s.seq) FROM (SELECT CAST(pg_get_serial_sequence(:t, 'id') AS regclass)"
    " AS seq OFFSET 0) AS s, generate_series(1, :n)"
)


def reserve_ids(on: Session | Connection, table: Table, n: int) -> list[int]:
    """`n` new ids of `table`, drawn from its sequence (PostgreSQL), for rows written later
    with their ids (`insert_rows` of rows that give `id`). Sequences are not transactional:
    `on` may be any connection to the database (an id drawn and not used is a gap, as a
    rolled-back insert leaves)."""
    if n <= 0:
        return []
    return list(on.execute(_RESERVE, {"t": table.name, "n": n}).scalars())


def _getter(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A row's values of `names`, in order, as a tuple (one C call per row)."""
    if len(names) == 1:
        (name,) = names
        return lambda row: (row[name],)
    return operator.itemgetter(*names)


def _pg_type(table: Table, name: str) -> str:
    column = table.c[name]
    if isinstance(column.type, JSON):
        return "text"  # JSON text: the binary COPY form of a json value is its text
    compiled = column.type.compile(dialect=_PG_DIALECT)
    return "text" if compiled.startswith("VARCHAR") else compiled.lower()


def update_rows(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    add: Sequence[str] = (),
    assign: Sequence[str] = (),
) -> None:
    """Update rows by id: each row gives `id`, an increment for each column in `add` (SQL
    `col = col + delta`, so a CHECK sees a lost update) and a value for each in `assign`.
    `updated_at` is set when the table has it. One statement on PostgreSQL, the rows in one
    JSON parameter (json_to_recordset)."""
    if not rows:
        return
    stamp = "updated_at" in table.c
    if not _is_pg(session):
        sets = [f"{c} = {c} + :{c}" for c in add] + [f"{c} = :{c}" for c in assign]
        if stamp:
            sets.append("updated_at = :updated_at__")
        now = utcnow()
        params = [
            {
                **{k: (json.dumps(v) if _is_json(table, k) and v is not None else v)
                   for k, v in row.items()},
                "updated_at__": now,
            }
            for row in rows
        ]  # fmt: skip
        stmt = f"UPDATE {table.name} SET {', '.join(sets)} WHERE id = :id"
        session.execute(text(stmt), params)
        return
    names = ["id", *add, *assign]
    columns = ", ".join(
        f"{n} {'json' if _is_json(table, n) else _pg_type(table, n)}" for n in names
    )
    sets = [f"{c} = t.{c} + v.{c}" for c in add] + [f"{c} = v.{c}" for c in assign]
    if stamp:
        sets.append("updated_at = now()")
    stmt = (
        f"UPDATE {table.name} AS t SET {', '.join(sets)} "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS v({columns}) WHERE t.id = v.id"
    )
    # The rows as one JSON parameter: serialised in C, not dumped value by value.
    rows_json = json.dumps([{n: row[n] for n in names} for row in rows], default=_iso)
    session.execute(text(stmt), {"rows": rows_json})


def _iso(value: Any) -> str:
    """Dates and timestamps in a JSON parameter: ISO 8601, which PostgreSQL reads back."""
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _is_json(table: Table, name: str) -> bool:
    return isinstance(table.c[name].type, JSON)


def insert_new(session: Session, table: Table) -> Any:
    """`INSERT … ON CONFLICT DO NOTHING` into `table` for this session's database: what a
    unique key already holds is kept, and the statement goes on (`.from_select` or rows)."""
    if _is_pg(session):
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def insert_rows_new(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert those of `rows` that no unique key of `table` holds yet; the ids of the rows
    inserted. On PostgreSQL one `INSERT … SELECT … ON CONFLICT DO NOTHING` over the rows
    as one JSON parameter (json_to_recordset: what `update_rows` does); elsewhere multi-row
    VALUES statements."""
    if not rows:
        return []
    stamped = [{**_stamps(table), **row} for row in rows]
    if not _is_pg(session):
        stmt = insert_new(session, table).returning(table.c.id)
        return list(session.scalars(stmt, stamped).all())
    names = list(stamped[0])
    columns = ", ".join(
        f"{n} {'json' if _is_json(table, n) else _pg_type(table, n)}" for n in names
    )
    listed = ", ".join(names)
    stmt = (
        f"INSERT INTO {table.name} ({listed}) SELECT {listed} "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS v({columns}) "
        "ON CONFLICT DO NOTHING RETURNING id"
    )
    rows_json = json.dumps([{n: row.get(n) for n in names} for row in stamped], default=_iso)
    return list(session.scalars(text(stmt), {"rows": rows_json}).all())


def _stamps(table: Table) -> dict[str, Any]:
    now = utcnow()
    return {name: now for name in ("created_at", "updated_at") if name in table.c}


def rows_table(
    session: Session, name: str, columns: Sequence[tuple[str, Any]], rows: Sequence[Sequence[Any]]
) -> Any:
    """`rows` (tuples of `columns`' (name, SQL type) order) as a table to select from in one
    statement: on PostgreSQL `unnest` of one array parameter per column (binary, no JSON);
    elsewhere the rows as one JSON parameter read by `json_each`."""
    if _is_pg(session):
        arrays = [
            bindparam(None, [row[k] for row in rows], type_=ARRAY(sql_type))
            for k, (_name, sql_type) in enumerate(columns)
        ]
        named = (column(n, sql_type) for n, sql_type in columns)
        return func.unnest(*arrays).table_valued(*named).render_derived(name=name)
    each = func.json_each(bindparam(None, json.dumps([list(r) for r in rows]))).table_valued(
        "value"
    )
    picked = (
        type_coerce(func.json_extract(each.c.value, f"$[{k}]"), sql_type).label(n)
        for k, (n, sql_type) in enumerate(columns)
    )
    return select(*picked).select_from(each).subquery(name)


class json_object(FunctionElement[Any]):  # noqa: N801 (an SQL function)
    """A JSON object from key, value, key, value …: `json_build_object` on PostgreSQL,
    `json_object` on SQLite (a JSON-typed value, e.g. a `json_array_of`, nests as JSON)."""

    type = JSON()
    inherit_cache = True


class json_array_of(FunctionElement[Any]):  # noqa: N801 (an SQL aggregate)
    """The group's values as a JSON array, ordered by the second argument: `json_agg(v ORDER
    BY o)` on PostgreSQL; on SQLite `json_group_array(v)`, in the order the rows come (the
    caller orders them)."""

    type = JSON()
    inherit_cache = True


@compiles(json_object, "postgresql")
def _json_object_pg(element: Any, compiler: Any, **kw: Any) -> str:
    return f"json_build_object({compiler.process(element.clauses, **kw)})"


@compiles(json_object)
def _json_object(element: Any, compiler: Any, **kw: Any) -> str:
    # SQLite nests a JSON text as JSON only when it comes straight from a JSON function:
    # a JSON value from a subquery's column is read through json() again.
    parts = []
    for clause in element.clauses.clauses:
        sql = compiler.process(clause, **kw)
        parts.append(f"json({sql})" if isinstance(clause.type, JSON) else sql)
    return f"json_object({', '.join(parts)})"


@compiles(json_array_of, "postgresql")
def _json_array_of_pg(element: Any, compiler: Any, **kw: Any) -> str:
    value, order = element.clauses.clauses
    return f"json_agg({compiler.process(value, **kw)} ORDER BY {compiler.process(order, **kw)})"


@compiles(json_array_of)
def _json_array_of(element: Any, compiler: Any, **kw: Any) -> str:
    value, _order = element.clauses.clauses
    return f"json_group_array({compiler.process(value, **kw)})"
