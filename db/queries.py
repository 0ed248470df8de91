"""Query helpers shared by the domain code: conflict-safe inserts that work on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.models import Base


def insert_ignoring_conflicts(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows``, silently skipping any that violate a unique constraint (idempotent retries)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(model).on_conflict_do_nothing(), list(rows))


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
