"""Database engines and sessions: SQLite (aiosqlite) or PostgreSQL (asyncpg), same code."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import StaticPool

from vmexec.config import async_db_url

log = logging.getLogger(__name__)

#: The database holds password hashes, session hashes and webhook credentials: owner only.
FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


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
    # Deleted content is overwritten, not left in free pages: dropped clear-text sessions and
    # webhook credentials forgotten after delivery must not stay readable in the file.
    # (Debian's SQLite has it on by default, so this costs nothing new there.)
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def prepare_sqlite_file(path: Path) -> None:
    """Make the SQLite file ``path`` readable by its owner only, before SQLite opens it.

    A missing directory is created 0700 and a missing file 0600 (SQLite gives its ``-wal`` and
    ``-shm`` files the database file's mode). An existing file open to others is narrowed to
    0600, with a warning; an existing directory is left as the operator made it.
    Raises OSError when the directory or file cannot be created.
    """
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=DIRECTORY_MODE)
        # mkdir's mode is masked by the umask; the last component must be 0700 whatever it is.
        path.parent.chmod(DIRECTORY_MODE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:
            os.fchmod(fd, mode & 0o700)
            log.warning("database file %s was readable by others (mode %o); made it %o",
                        path, mode, mode & 0o700)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.exists() and stat.S_IMODE(sidecar.stat().st_mode) & 0o077:
            sidecar.chmod(FILE_MODE)


def create_engine(url: str) -> AsyncEngine:
    """An async engine for ``url`` (plain ``postgresql://`` / ``sqlite://`` get their async
    driver). An SQLite file and its directory are created owner-only if missing
    (:func:`prepare_sqlite_file`). Raises OSError when they cannot be."""
    parsed = make_url(async_db_url(url))
    # Statement parameters (password and session hashes, webhook URLs with credentials) stay
    # out of error messages, which end up in logs and in SYS.1000 replies.
    kwargs: dict[str, Any] = {"hide_parameters": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            prepare_sqlite_file(Path(database).expanduser())
            # One connection, used in turn: SQLite has one writer at a time anyway, and writers
            # on several connections wait for each other in SQLite's busy handler, which sleeps
            # up to 100 ms a try. Queued on the pool instead, a write costs what it costs.
            kwargs.update(pool_size=1, max_overflow=0)
        else:
            # One shared connection, or every session would see its own empty memory DB.
            kwargs["poolclass"] = StaticPool
        # Every session ends its transaction itself (commit, or rollback when it closes):
        # the pool's own rollback of a returned SQLite connection is one more thread hop to
        # aiosqlite's worker per session, for nothing (two per API command).
        kwargs["pool_reset_on_return"] = None
        engine = _create_async_engine(parsed, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return _create_async_engine(parsed, pool_pre_ping=True, **kwargs)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: rows are read after commit (e.g. to build a reply).
    return async_sessionmaker(engine, expire_on_commit=False)
