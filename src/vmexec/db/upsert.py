"""``INSERT … ON CONFLICT`` for both back-ends: several nodes write the same rows (the same
VM seen by two of them, the same host added twice), and a plain INSERT would fail on the
second writer's unique key instead of agreeing with the first."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession, table: Any) -> Any:
    """An INSERT of ``table`` in the dialect of ``session``'s database, which has
    ``on_conflict_do_update``/``on_conflict_do_nothing`` (PostgreSQL and SQLite spell both
    the same way)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"
