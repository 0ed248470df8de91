"""Query helpers shared by the domain code: conflict-safe inserts that work on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import JSON, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.models import Base

QUERY_BATCH = 500
"""Ids per ``IN (...)`` list: keeps queries under SQLite's bound-parameter limit."""
T = TypeVar("T")

COPY_MIN_ROWS = 64
"""From this many rows PostgreSQL gets them by COPY: ~10x faster than one INSERT per row, which is what
executemany sends (a chunk of 256 faces writes about 1,300 rows)."""


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_ignoring_conflicts(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows``, silently skipping any that violate a unique constraint (idempotent retries)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and len(rows) >= COPY_MIN_ROWS:
        _copy_ignoring_conflicts(session, model.__table__, rows)
        return
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(model).on_conflict_do_nothing(), list(rows))


def _with_defaults(table: Table, rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Column names and row values, with the Python-side defaults SQLAlchemy would have filled in (COPY won't)."""
    given = list(rows[0])
    defaulted = [c for c in table.columns if c.name not in given and c.default is not None and not c.primary_key]
    columns = given + [c.name for c in defaulted]
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    from psycopg.types.json import Json

    values = []
    for row in rows:
        record = [row[name] for name in given]
        record += [c.default.arg(None) if c.default.is_callable else c.default.arg for c in defaulted]  # type: ignore[union-attr]
        values.append([Json(v) if name in json_columns and v is not None else v for name, v in zip(columns, record)])
    return columns, values


def _copy_ignoring_conflicts(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    # COPY cannot skip conflicting rows, so the rows go into a private temporary table first and from there
    # into the real one with ON CONFLICT DO NOTHING, all inside the caller's transaction.
    columns, values = _with_defaults(table, rows)
    names = ", ".join(f'"{name}"' for name in columns)
    staging = f"copy_{table.name}"
    cursor = session.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f'CREATE TEMP TABLE "{staging}" ON COMMIT DROP AS SELECT {names} FROM "{table.name}" WITH NO DATA')
        with cursor.copy(f'COPY "{staging}" ({names}) FROM STDIN') as copy:
            for record in values:
                copy.write_row(record)
        cursor.execute(f'INSERT INTO "{table.name}" ({names}) SELECT {names} FROM "{staging}" ON CONFLICT DO NOTHING')
        cursor.execute(f'DROP TABLE "{staging}"')
    finally:
        cursor.close()


def upsert(session: Session, model: type[Base], rows: Sequence[dict[str, Any]], *, keys: Sequence[str],
           update: Sequence[str]) -> None:
    """Insert ``rows``; a row whose ``keys`` already exist updates the ``update`` columns instead.

    ``rows`` must not repeat a key: PostgreSQL refuses to update one row twice in one statement.
    """
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)
    statement = insert.on_conflict_do_update(index_elements=list(keys),
                                             set_={column: insert.excluded[column] for column in update})
    session.execute(statement, list(rows))
