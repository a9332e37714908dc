"""Executions' output: live in memory while they run, kept in the database for later.

Each chunk has a byte ``offset`` in the execution's combined output (both streams, in the order
the guest wrote them), which is what a reader resumes from (SSE's ``Last-Event-ID``).

- :class:`OutputRecorder` takes the engine's chunks of one execution: it keeps at most
  ``cap`` bytes (both streams together; the rest is dropped and the stream marked truncated),
  hands them to the :class:`OutputHub` for live readers, and writes them to
  ``execution_output`` in batches: at most every :data:`FLUSH_SECONDS`, or sooner once
  :data:`FLUSH_BYTES` are waiting. What is still waiting at the end is written in the
  transaction that records the end, so a command that ends quickly costs no extra write.
- :class:`OutputHub` keeps the chunks of this process's running executions and wakes their
  readers. :meth:`OutputHub.follow` serves a reader from memory while the execution runs here,
  and from the database otherwise (ended, or run by another process, which it polls).
- :meth:`OutputHub.watched`: whether anyone reads an execution's output as it comes, here or
  on another node (the engine follows the guest's output at the live pace only then). A
  reader polling the database for an execution another node runs says so in
  ``output_watches`` (renewed while it reads); the node running it reads those marks at most
  every :data:`REMOTE_WATCH_POLL` while its engine asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import Execution, ExecutionOutput, OutputWatch, utcnow
from vmexec.db.upsert import insert_for
from vmexec.db.writes import Rows, Write
from vmexec.execution.flag import Flag
from vmexec.execution.models import OutputChunk, StreamName, StreamOutput
from vmexec.zstack.exec import ExecutionState

log = logging.getLogger(__name__)

#: One output row, as :class:`~vmexec.db.writes.Rows` of it (the last rows of many executions
#: ending together go as one ``executemany``).
OUTPUT_ROW = insert(cast(Table, ExecutionOutput.__table__))

#: A running execution's chunks wait at most this long in memory before they are written.
FLUSH_SECONDS = 0.5
#: ... or until this many bytes wait.
FLUSH_BYTES = 256 * 1024
#: How often a reader polls the database for an execution run by another process.
POLL_SECONDS = 0.5
#: Such a reader marks the execution watched for REMOTE_WATCH_TTL seconds, renewed every
#: REMOTE_WATCH_RENEW while it reads: a reader that went away (its node killed) stops
#: counting a few seconds later.
REMOTE_WATCH_TTL, REMOTE_WATCH_RENEW = 6.0, 2.0
#: The node running executions reads the marks at most this often (seconds), and only while
#: its engine asks (executions run here).
REMOTE_WATCH_POLL = 0.5


#: The streams, iterated once: iterating an Enum class is slow, and a run over thousands of
#: targets makes a recorder for each.
_STREAMS = tuple(StreamName)


@dataclass(frozen=True, slots=True)
class Chunk:
    """Output of one stream at ``offset`` in the execution's combined output."""

    stream: StreamName
    data: bytes
    offset: int

    @property
    def end(self) -> int:
        return self.offset + len(self.data)

    def after(self, position: int) -> Chunk:
        """This chunk without its bytes before ``position`` (a resume inside a chunk)."""
        if position <= self.offset:
            return self
        return Chunk(self.stream, self.data[position - self.offset:], position)


@dataclass(eq=False, slots=True)
class _Live:
    """A running execution's chunks so far, and a way to wait for more."""

    chunks: list[Chunk] = field(default_factory=list)
    size: int = 0
    ended: bool = False
    changed: Flag = field(default_factory=Flag)

    def append(self, chunk: Chunk) -> None:
        self.chunks.append(chunk)
        self.size = chunk.end
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        # Readers waiting now are woken; the next ones wait on a fresh flag.
        self.changed.set()
        self.changed = Flag()


def _utf8_prefix(data: bytes, limit: int) -> bytes:
    """The first at most ``limit`` bytes of ``data``, not ending inside a UTF-8 character."""
    if len(data) <= limit:
        return data
    cut = limit
    # data[cut] is the first byte left out: while it continues a character, that character
    # straddles the cut and is left out whole (at most 3 continuation bytes in UTF-8).
    while cut > 0 and limit - cut < 3 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut] if (data[cut] & 0xC0) != 0x80 else data[:limit]


class OutputRecorder:
    """Records the output of one execution (see the module docstring). Not thread-safe; one
    per execution, used by the task that runs it."""

    __slots__ = ("_cap", "_db", "_ended", "_live", "_pending", "_pending_bytes", "_seq",
                 "_timer", "_writing", "dropped", "seen", "stored", "uuid")

    def __init__(self, uuid: str, live: _Live, db: async_sessionmaker[AsyncSession], *,
                 cap: int) -> None:
        self.uuid = uuid
        self._live = live
        self._db = db
        self._cap = cap
        self._seq = 0
        self.stored: dict[StreamName, int] = dict.fromkeys(_STREAMS, 0)
        #: Bytes seen per stream, stored or not.
        self.seen: dict[StreamName, int] = dict.fromkeys(_STREAMS, 0)
        self.dropped: dict[StreamName, bool] = dict.fromkeys(_STREAMS, False)
        self._pending: list[dict[str, Any]] = []
        self._pending_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        #: Set by end_writes/discard: no more batches.
        self._ended = False

    @property
    def size(self) -> int:
        """Bytes kept so far, both streams."""
        return self._live.size

    def add(self, chunk: OutputChunk) -> None:
        """Keep ``chunk`` (or the part of it within the cap) and pass it to live readers."""
        self.seen[chunk.stream] += len(chunk.data)
        room = self._cap - self._live.size
        data = chunk.data if len(chunk.data) <= room else _utf8_prefix(chunk.data, room)
        if len(data) < len(chunk.data):
            self.dropped[chunk.stream] = True
        if not data:
            return
        kept = Chunk(chunk.stream, data, self._live.size)
        self._live.append(kept)
        self.stored[chunk.stream] += len(data)
        self._pending.append({"execution_uuid": self.uuid, "seq": self._seq,
                              "stream": str(kept.stream), "offset": kept.offset, "data": data})
        self._seq += 1
        self._pending_bytes += len(data)
        if self._writing is None and not self._ended:
            if self._pending_bytes >= FLUSH_BYTES:
                self._flush()
            elif self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)

    def continue_after(self, chunks: list[Chunk], next_seq: int) -> None:
        """Go on after ``chunks``, stored by a process that stopped while the execution ran:
        they are the start of the output (for readers, offsets and the cap), the final result
        adds only what comes after them, and new rows follow ``next_seq``."""
        for chunk in chunks:
            self._live.append(chunk)
            self.stored[chunk.stream] += len(chunk.data)
            self.seen[chunk.stream] += len(chunk.data)
        self._seq = next_seq

    def complete(self, stream: StreamName, output: StreamOutput) -> None:
        """Add what the final result has of ``stream`` beyond the chunks seen (a platform or
        path that streamed less than it returned), a chunk per piece."""
        for piece in output.after(self.seen[stream]):
            self.add(OutputChunk(stream, piece))

    def _flush(self) -> None:
        self._timer = None
        if not self._pending:
            return
        rows, self._pending, self._pending_bytes = self._pending, [], 0
        self._writing = asyncio.ensure_future(self._write(rows))

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            async with self._db() as db:
                await db.execute(insert(ExecutionOutput), rows)
                await db.commit()
        except asyncio.CancelledError:
            self._pending[:0] = rows
            raise
        except Exception:
            # Kept for the end's transaction: live readers have the chunks meanwhile.
            log.exception("writing output of execution %s failed; retrying at its end",
                          self.uuid)
            self._pending[:0] = rows
            self._pending_bytes += sum(len(r["data"]) for r in rows)
            return
        finally:
            self._writing = None
        if self._pending and self._timer is None and not self._ended:
            self._timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush)

    async def end_writes(self) -> list[Write]:
        """Stop the batching and return the writes of the rows not written yet, for the
        transaction that records the end."""
        self._ended = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            await asyncio.shield(self._writing)
        if not self._pending:
            return []
        rows, self._pending, self._pending_bytes = self._pending, [], 0
        return [Rows(OUTPUT_ROW, row) for row in rows]

    async def discard(self) -> None:
        """Stop the batching (shutdown): what is not written is not needed, the execution is
        collected again at the next start."""
        self._ended = True
        if self._timer is not None:
            self._timer.cancel()
        if self._writing is not None:
            self._writing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._writing


class OutputHub:
    """The live output of this process's running executions, and the way to read any
    execution's output (see the module docstring)."""

    def __init__(self, db: async_sessionmaker[AsyncSession], *, cap: int) -> None:
        self._db = db
        self.cap = cap
        self._live: dict[str, _Live] = {}
        #: Readers in :meth:`follow` now, by execution.
        self._readers: dict[str, int] = {}
        #: Executions readers on other nodes watch (as last read), when read, and the read.
        self._remote: frozenset[str] = frozenset()
        self._remote_read_at = -math.inf
        self._remote_reading: asyncio.Task[None] | None = None

    def open(self, uuid: str) -> OutputRecorder:
        """Start recording execution ``uuid`` here (before it runs, so readers find it)."""
        live = self._live.get(uuid)
        if live is None:
            live = self._live[uuid] = _Live()
        return OutputRecorder(uuid, live, self._db, cap=self.cap)

    async def reopen(self, uuid: str) -> OutputRecorder:
        """Record execution ``uuid`` again, after a restart: it goes on from what the stopped
        process stored (see :meth:`OutputRecorder.continue_after`)."""
        chunks = await self.stored(uuid)
        async with self._db() as db:
            last = await db.scalar(select(func.max(ExecutionOutput.seq))
                                   .where(ExecutionOutput.execution_uuid == uuid))
        recorder = self.open(uuid)
        recorder.continue_after(chunks, 0 if last is None else int(last) + 1)
        return recorder

    def close(self, uuid: str) -> None:
        """Execution ``uuid`` has ended and its end is committed: readers finish from memory,
        later ones read the database."""
        live = self._live.pop(uuid, None)
        if live is not None:
            live.end()

    def is_live(self, uuid: str) -> bool:
        return uuid in self._live

    def watched(self, uuid: str) -> bool:
        """Whether someone reads execution ``uuid``'s output as it comes (an SSE reader of it
        or of its run, here or on another node): the engine follows it at the live pace only
        then. A reader elsewhere counts once this node has read its mark (within
        :data:`REMOTE_WATCH_POLL` of a call)."""
        if uuid in self._readers:
            return True
        loop = asyncio.get_running_loop()
        if self._remote_reading is None and loop.time() >= self._remote_read_at + REMOTE_WATCH_POLL:
            self._remote_read_at = loop.time()
            self._remote_reading = loop.create_task(self._read_remote_watches())
        return uuid in self._remote

    def watched_count(self) -> int:
        """How many executions running here are :meth:`watched`."""
        return sum(1 for uuid in list(self._live) if self.watched(uuid))

    async def _read_remote_watches(self) -> None:
        try:
            async with self._db() as db:
                self._remote = frozenset(await db.scalars(
                    select(OutputWatch.execution_uuid)
                    .where(OutputWatch.watched_until > utcnow())))
        except Exception:
            # Output is still followed, at the slow pace: not worth failing a command for.
            log.warning("reading the output watches of other nodes failed", exc_info=True)
        finally:
            self._remote_reading = None

    async def _mark_watched(self, uuid: str) -> None:
        until = utcnow() + timedelta(seconds=REMOTE_WATCH_TTL)
        try:
            async with self._db() as db:
                mark = insert_for(db, OutputWatch.__table__).values(
                    execution_uuid=uuid, watched_until=until)
                await db.execute(mark.on_conflict_do_update(
                    index_elements=["execution_uuid"], set_={"watched_until": until}))
                await db.commit()
        except Exception:
            # The reader still gets the output, a few seconds behind the guest.
            log.warning("marking execution %s watched failed", uuid, exc_info=True)

    async def purge_watches(self) -> None:
        """Delete the marks past their time (with the retention purge)."""
        async with self._db() as db:
            await db.execute(delete(OutputWatch).where(OutputWatch.watched_until <= utcnow()))
            await db.commit()

    async def aclose(self) -> None:
        """Wait for a read of other nodes' marks under way (one query; cancelled, it would
        leave its database connection unreturned)."""
        if self._remote_reading is not None:
            await asyncio.shield(self._remote_reading)

    def snapshot(self, uuid: str) -> list[Chunk] | None:
        """The chunks so far of ``uuid`` if it runs here, else None."""
        live = self._live.get(uuid)
        return None if live is None else list(live.chunks)

    async def ended(self, uuid: str) -> None:
        """Wait until execution ``uuid``, if it runs here, has ended."""
        live = self._live.get(uuid)
        while live is not None and not live.ended:
            await live.changed.wait()

    async def follow(self, uuid: str, after: int = 0) -> AsyncIterator[Chunk]:
        """The output of execution ``uuid`` after byte ``after``, as it comes, until the
        execution ends (at once for one that has ended)."""
        position = after
        mark_at = -math.inf
        loop = asyncio.get_running_loop()
        self._readers[uuid] = self._readers.get(uuid, 0) + 1
        try:
            while True:
                live = self._live.get(uuid)
                if live is not None:
                    async for chunk in _follow_live(live, position):
                        yield chunk
                    return
                chunks, running = await self._stored(uuid, position)
                for chunk in chunks:
                    yield chunk
                    position = chunk.end
                if not running:
                    return
                # Run by another process, or between its record and its start here: poll,
                # and let the node running it know someone reads.
                if loop.time() >= mark_at:
                    mark_at = loop.time() + REMOTE_WATCH_RENEW
                    await asyncio.shield(self._mark_watched(uuid))
                await asyncio.sleep(POLL_SECONDS)
        finally:
            if self._readers[uuid] > 1:
                self._readers[uuid] -= 1
            else:
                del self._readers[uuid]

    async def size(self, uuid: str) -> int:
        """Bytes of output kept of ``uuid`` so far (both streams)."""
        live = self._live.get(uuid)
        if live is not None:
            return live.size
        async with self._db() as db:
            end = await db.scalar(
                select(func.max(ExecutionOutput.offset + func.length(ExecutionOutput.data)))
                .where(ExecutionOutput.execution_uuid == uuid))
        return int(end or 0)

    async def stored(self, uuid: str, after: int = 0) -> list[Chunk]:
        """The chunks of ``uuid`` in the database after byte ``after``."""
        chunks, _ = await self._stored(uuid, after)
        return chunks

    async def _stored(self, uuid: str, after: int) -> tuple[list[Chunk], bool]:
        async with self._db() as db:
            state = await db.scalar(select(Execution.state).where(Execution.uuid == uuid))
            rows = (await db.execute(
                select(ExecutionOutput.stream, ExecutionOutput.data, ExecutionOutput.offset)
                .where(ExecutionOutput.execution_uuid == uuid,
                       ExecutionOutput.offset + func.length(ExecutionOutput.data) > after)
                .order_by(ExecutionOutput.seq))).all()
        chunks = [Chunk(StreamName(s), bytes(d), o).after(after) for s, d, o in rows]
        return chunks, state == ExecutionState.RUNNING


async def _follow_live(live: _Live, after: int) -> AsyncIterator[Chunk]:
    index = 0
    while True:
        chunks = live.chunks
        while index < len(chunks):
            chunk = chunks[index]
            index += 1
            if chunk.end > after:
                yield chunk.after(after)
        if live.ended:
            return
        await live.changed.wait()
