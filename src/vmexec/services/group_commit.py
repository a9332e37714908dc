"""Group commit: the writes queued while a transaction runs go together in the next one.

A run of thousands of short commands changes its targets' rows thousands of times a second;
a transaction each would make the database the bottleneck (SQLite has one writer, and vmexec
gives it one connection). :class:`GroupCommit` keeps one writer task: whatever was queued
since its last transaction is executed in the next one, in queue order, and every waiter is
resumed once its writes are committed. A failing group is retried one submission at a time,
so one bad statement fails only its own caller. A group that fails because the database is
away is tried again, whole, until it is back (:mod:`vmexec.db.outages`): the writes queued are
run targets' results.

A write is a statement, or :class:`~vmexec.db.writes.Rows`: one row's parameters for a
statement built once; the rows of one statement in a group go as one ``executemany``
(:func:`~vmexec.db.writes.execute_writes`: rows of different statements in one group must not
depend on each other's order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.outages import until_written
from vmexec.db.writes import Rows, Write, execute_writes

log = logging.getLogger(__name__)

__all__ = ["GroupCommit", "Rows", "Write"]

_Entry = tuple[Sequence[Write], "asyncio.Future[None] | None"]

#: How long a stop waits for the queued writes to commit (seconds).
CLOSE_WAIT = 30.0


class GroupCommit:
    """Commits queued statements in groups (see the module docstring)."""

    def __init__(self, db: async_sessionmaker[AsyncSession]) -> None:
        self._db = db
        self._queue: list[_Entry] = []
        self._writer: asyncio.Task[None] | None = None
        #: Transactions committed (for tests and benchmarks: groups, not statements).
        self.transactions = 0

    def submit(self, *statements: Write) -> None:
        """Queue ``statements`` without waiting (a failure is logged); they commit before
        anything queued after them, or with it."""
        self._enqueue(statements, None)

    async def commit(self, *statements: Write) -> None:
        """Queue ``statements`` and wait until they are committed (with no statements: until
        everything queued before is). Queued before this coroutine first suspends, so the
        order of calls is the order of commits. Raises what the database raised for them."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue(statements, future)
        await asyncio.shield(future)

    def _enqueue(self, statements: Sequence[Write], future: asyncio.Future[None] | None
                 ) -> None:
        self._queue.append((statements, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        while self._queue:
            group, self._queue = self._queue, []
            try:
                await self._transaction([s for statements, _ in group for s in statements])
            except Exception:
                await self._one_by_one(group)
            else:
                self.transactions += 1
                for _, future in group:
                    _resolve(future)

    async def _one_by_one(self, group: list[_Entry]) -> None:
        for statements, future in group:
            try:
                await self._transaction(statements)
            except Exception as exc:
                if future is None:
                    log.exception("a queued write failed")
                elif not future.done():
                    future.set_exception(exc)
            else:
                self.transactions += 1
                _resolve(future)

    async def _transaction(self, writes: Sequence[Write]) -> None:
        if writes:
            await until_written(lambda: self._try(writes), what="committing queued writes")

    async def _try(self, writes: Sequence[Write]) -> None:
        async with self._db() as db:
            await execute_writes(db, writes)
            await db.commit()

    async def aclose(self, wait: float = CLOSE_WAIT) -> None:
        """Commit what is queued, then stop; after ``wait`` seconds (the database is away)
        give up on it (what it holds is found unfinished at the next start)."""
        writer = self._writer
        if writer is None:
            return
        done, _ = await asyncio.wait({writer}, timeout=wait)
        if not done:
            log.warning("queued writes not committed within %.0fs of the stop: given up",
                        wait)
            writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
