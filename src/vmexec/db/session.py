"""Database engines and sessions: SQLite (aiosqlite) or PostgreSQL (asyncpg), same code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import StaticPool

from vmexec.config import async_db_url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (job polls) run while a writer commits; foreign keys are off by default
    # in SQLite; busy_timeout waits for a lock instead of failing at once. synchronous=NORMAL
    # is WAL's recommended setting: commits stop waiting for an fsync each (which capped the
    # API at a few dozen commands a second); the database stays consistent on a crash, and a
    # power loss can only forget the last commits before it.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (plain ``postgresql://`` / ``sqlite://`` get their async
    driver). An SQLite file's directory is created if missing."""
    parsed = make_url(async_db_url(url))
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            # One connection, used in turn: SQLite has one writer at a time anyway, and writers
            # on several connections wait for each other in SQLite's busy handler, which sleeps
            # up to 100 ms a try. Queued on the pool instead, a write costs what it costs.
            kwargs.update(pool_size=1, max_overflow=0)
        else:
            # One shared connection, or every session would see its own empty memory DB.
            kwargs["poolclass"] = StaticPool
        engine = _create_async_engine(parsed, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return _create_async_engine(parsed, pool_pre_ping=True)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: rows are read after commit (e.g. to build a reply).
    return async_sessionmaker(engine, expire_on_commit=False)
