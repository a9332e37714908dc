"""Executions' output (services/output.py) on a real SQLite database: batched writes while a
command runs, a reader in another process (another hub) following from the database and
making the execution watched where it runs, offsets across streams, and the cap cut on UTF-8
boundaries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.migrate import upgrade
from vmexec.db.models import Execution, OutputWatch, utcnow
from vmexec.db.session import create_engine, create_sessionmaker
from vmexec.db.writes import execute_writes
from vmexec.execution.models import OutputChunk, StreamName
from vmexec.services import output
from vmexec.services.output import Chunk, OutputHub, _utf8_prefix

UUID = "ab" * 16


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'out.db'}")
    await upgrade(engine)
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        await session.execute(insert(Execution).values(
            uuid=UUID, account_uuid="a" * 32, account_name="a", vm_uuid="v" * 32,
            platform="Linux", command="x", timeout_seconds=60, outcome="running",
            state="Running", requested_at=utcnow()))
        await session.commit()
    yield sessions
    await engine.dispose()


async def _collect(hub: OutputHub, after: int = 0) -> list[Chunk]:
    return [chunk async for chunk in hub.follow(UUID, after)]


async def test_a_reader_elsewhere_follows_from_the_database(
        db: async_sessionmaker[AsyncSession]) -> None:
    runner, elsewhere = OutputHub(db, cap=1 << 20), OutputHub(db, cap=1 << 20)
    recorder = runner.open(UUID)
    reader = asyncio.ensure_future(_collect(elsewhere))
    recorder.add(OutputChunk(StreamName.STDOUT, b"one\n"))
    recorder.add(OutputChunk(StreamName.STDERR, "é\n".encode()))
    # Written in a batch while the command runs: the other process sees them before the end.
    async with asyncio.timeout(10):
        while not await elsewhere.stored(UUID):  # noqa: ASYNC110 - polls another process's writes
            await asyncio.sleep(0.05)
    assert not reader.done()
    recorder.add(OutputChunk(StreamName.STDOUT, b"two\n"))
    writes = await recorder.end_writes()  # the rest, for the end's transaction
    assert len(writes) == 1
    async with db() as session:
        await execute_writes(session, writes)
        await session.execute(update(Execution).where(Execution.uuid == UUID)
                              .values(state="Succeeded"))
        await session.commit()
    runner.close(UUID)
    chunks = await asyncio.wait_for(reader, 10)
    assert [(c.stream, c.data, c.offset) for c in chunks] == [
        (StreamName.STDOUT, b"one\n", 0), (StreamName.STDERR, "é\n".encode(), 4),
        (StreamName.STDOUT, b"two\n", 7)]
    # Resumed after any byte: exactly the rest, also inside a chunk.
    assert [c.data for c in await _collect(elsewhere, 5)] == [b"\xa9\n", b"two\n"]
    assert await elsewhere.size(UUID) == 11


async def test_a_reader_here_follows_from_memory(db: async_sessionmaker[AsyncSession]) -> None:
    hub = OutputHub(db, cap=1 << 20)
    recorder = hub.open(UUID)
    recorder.add(OutputChunk(StreamName.STDOUT, b"a"))
    reader = asyncio.ensure_future(_collect(hub))
    await asyncio.sleep(0)
    recorder.add(OutputChunk(StreamName.STDOUT, b"b"))
    await recorder.discard()
    hub.close(UUID)
    assert [c.data for c in await asyncio.wait_for(reader, 10)] == [b"a", b"b"]


async def test_an_execution_is_watched_while_a_reader_follows_it(
        db: async_sessionmaker[AsyncSession]) -> None:
    # What the engine paces its reads of the guest's output files by (issue 16).
    hub = OutputHub(db, cap=1 << 20)
    recorder = hub.open(UUID)
    assert not hub.watched(UUID)
    readers = [asyncio.ensure_future(_collect(hub)) for _ in range(2)]
    await asyncio.sleep(0)
    assert hub.watched(UUID)
    readers[0].cancel()  # one reader goes away: the other still reads
    with pytest.raises(asyncio.CancelledError):
        await readers[0]
    assert hub.watched(UUID)
    await recorder.discard()
    hub.close(UUID)
    await asyncio.wait_for(readers[1], 10)
    assert not hub.watched(UUID)
    await hub.aclose()


async def _until(predicate: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(10):
        while not predicate():  # noqa: ASYNC110 - watched() reads the marks in the background
            await asyncio.sleep(0.02)


async def test_a_reader_on_another_node_makes_the_execution_watched_where_it_runs(
        db: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: only readers of the node running it counted, so a reader on another node got
    # the output at the unwatched pace (read every 2 s), about 3 s behind the guest.
    monkeypatch.setattr(output, "REMOTE_WATCH_TTL", 1.5)
    monkeypatch.setattr(output, "REMOTE_WATCH_RENEW", 0.2)
    monkeypatch.setattr(output, "REMOTE_WATCH_POLL", 0.05)
    runner, elsewhere = OutputHub(db, cap=1 << 20), OutputHub(db, cap=1 << 20)
    recorder = runner.open(UUID)
    assert not runner.watched(UUID)
    reader = asyncio.ensure_future(_collect(elsewhere))
    await _until(lambda: runner.watched(UUID), "the reader elsewhere counts where it runs")
    # Renewed while it reads: still watched after twice the mark's lifetime.
    loop = asyncio.get_running_loop()
    until = loop.time() + 2 * output.REMOTE_WATCH_TTL
    while loop.time() < until:
        assert runner.watched(UUID)
        await asyncio.sleep(0.1)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await _until(lambda: not runner.watched(UUID), "a reader gone stops counting")
    await elsewhere.purge_watches()
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(OutputWatch)) == 0
    await recorder.discard()
    runner.close(UUID)
    await runner.aclose()


async def test_the_cap_keeps_whole_characters(db: async_sessionmaker[AsyncSession]) -> None:
    hub = OutputHub(db, cap=5)
    recorder = hub.open(UUID)
    recorder.add(OutputChunk(StreamName.STDOUT, "ab€".encode()))  # 2 + 3 bytes: fits
    recorder.add(OutputChunk(StreamName.STDERR, b"x"))
    assert recorder.stored == {StreamName.STDOUT: 5, StreamName.STDERR: 0}
    assert recorder.dropped[StreamName.STDERR] and not recorder.dropped[StreamName.STDOUT]
    small = OutputHub(db, cap=4).open("cd" * 16)
    small.add(OutputChunk(StreamName.STDOUT, "ab€".encode()))
    assert small.stored[StreamName.STDOUT] == 2 and small.dropped[StreamName.STDOUT]
    await recorder.discard()
    await small.discard()


@given(text=st.text(st.characters(blacklist_categories=["Cs"]), max_size=40),
       limit=st.integers(0, 200))
def test_utf8_prefix_never_cuts_a_character(text: str, limit: int) -> None:
    data = text.encode()
    prefix = _utf8_prefix(data, limit)
    assert data.startswith(prefix) and len(prefix) <= limit
    assert len(prefix) >= min(len(data), limit) - 3
    prefix.decode()  # valid UTF-8 stays valid


@given(data=st.binary(max_size=20), limit=st.integers(0, 30))
def test_utf8_prefix_of_any_bytes_is_a_prefix_within_the_limit(data: bytes, limit: int) -> None:
    prefix = _utf8_prefix(data, limit)
    assert data.startswith(prefix) and len(prefix) <= limit
