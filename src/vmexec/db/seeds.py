"""Rows that every node writes at its start (the ``admin`` account, ...): idempotent.

Several nodes may start at once on one database. A read-then-insert lets two of them both
read "absent" and the second insert fail on the unique key; ``INSERT … ON CONFLICT DO
NOTHING`` (PostgreSQL and SQLite alike) lets the first insert win and the others carry on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Insert, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_unless_present(db: AsyncSession, table: Table, values: Mapping[str, Any]) -> Insert:
    """The INSERT of ``values`` into ``table`` that does nothing when a row with the same
    primary or unique key exists (for ``db``'s dialect)."""
    dialect = db.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).values(dict(values)).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(table).values(dict(values)).on_conflict_do_nothing()
    raise NotImplementedError(f"no idempotent INSERT for the database {dialect!r}")
