"""Writes that must not be lost outlast a database that is away for a while.

A command's result exists only in the memory of the node that collected it until its
transaction commits (the guest's copy is cleaned up soon after). When that transaction fails
because the database is unreachable (PostgreSQL restarting or failing over, a connection cut,
SQLite locked by another process past its busy timeout, no connection free in the pool), the
write is tried again with a growing pause until the database is back, instead of losing the
result. An error that trying again cannot mend (a constraint, a bad statement) is raised at
once.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Pauses between tries: from FIRST_PAUSE, doubling up to MAX_PAUSE (seconds).
FIRST_PAUSE, MAX_PAUSE = 0.2, 5.0
#: A warning at the first failure, then at every this many (the database may be away long).
WARN_EVERY = 20
#: SQLite reports a bad statement (no such table, a syntax error) as an OperationalError too:
#: only these of its messages say the database is away.
_SQLITE_OUTAGES = ("database is locked", "database table is locked", "disk i/o error",
                   "database or disk is full", "unable to open database file")


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or used for now (trying again
    later may succeed), not that the statement is wrong."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError) and isinstance(exc.orig, sqlite3.Error):
        return any(message in str(exc.orig).lower() for message in _SQLITE_OUTAGES)
    return isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError
                      | sa_exc.TimeoutError | OSError)


async def until_written(write: Callable[[], Awaitable[T]], *, what: str) -> T:
    """``await write()``, tried again through database outages until it succeeds (each try
    must be a whole transaction). Raises what ``write`` raised for anything else, and
    CancelledError when cancelled (the caller stops: nothing was written)."""
    pause = FIRST_PAUSE
    failures = 0
    while True:
        try:
            return await write()
        except Exception as exc:
            if not is_outage(exc):
                raise
            failures += 1
            if failures == 1 or failures % WARN_EVERY == 0:
                log.warning("%s failed (%d times so far), trying again in %.1fs: %s: %s",
                            what, failures, pause, type(exc).__name__, exc)
        await asyncio.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE)
