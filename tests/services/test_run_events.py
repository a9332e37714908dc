"""A run's event feed and the merge of its targets' output (pure asyncio, no database)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from vmexec.services.run_events import (
    RunEvent,
    RunFeed,
    replayed,
    run_finished,
    target_finished,
    target_started,
    with_output,
)


@dataclass(frozen=True)
class _Chunk:
    stream: str
    data: bytes


async def _all(events: AsyncIterator[RunEvent]) -> list[RunEvent]:
    return [event async for event in events]


async def test_a_feed_gives_every_reader_everything_from_the_start() -> None:
    feed = RunFeed([target_started("vm1", "one", "e1")])
    early = asyncio.create_task(_all(feed.follow()))
    await asyncio.sleep(0)
    feed.publish(target_finished("vm1", "e1", "Succeeded", 0, None))
    late = asyncio.create_task(_all(feed.follow()))
    feed.publish(run_finished({"uuid": "r"}))
    feed.close()
    kinds = ["targetStarted", "targetFinished", "runFinished"]
    assert [e.kind for e in await early] == kinds
    assert [e.kind for e in await late] == kinds


async def test_output_comes_between_its_targets_start_and_end() -> None:
    slow = asyncio.Event()

    async def follow(execution: str) -> AsyncIterator[_Chunk]:
        if execution == "e1":
            await slow.wait()  # e1's output is late: its end must wait for it
        yield _Chunk("stdout", f"{execution} out\n".encode())
        yield _Chunk("stderr", "é\n".encode())

    feed = RunFeed()
    merged = asyncio.create_task(_all(with_output(feed.follow(), follow)))
    feed.publish(target_started("vm1", "one", "e1"))
    feed.publish(target_started("vm2", "two", "e2"))
    feed.publish(target_finished("vm2", "e2", "Succeeded", 0, None))
    feed.publish(target_finished("vm1", "e1", "Failed", 1, None))
    feed.publish(run_finished({"uuid": "r"}))
    feed.close()
    await asyncio.sleep(0.05)
    slow.set()
    events = await merged
    for execution in ("e1", "e2"):
        mine = [e for e in events if e.data.get("executionUuid") == execution]
        assert [e.kind for e in mine] == ["targetStarted", "output", "output", "targetFinished"]
        assert [e.data.get("text") for e in mine[1:3]] == [f"{execution} out\n", "é\n"]
        assert [e.data.get("stream") for e in mine[1:3]] == ["stdout", "stderr"]
    assert events[-1].kind == "runFinished"


async def test_a_target_without_an_execution_has_no_output() -> None:
    async def follow(execution: str) -> AsyncIterator[_Chunk]:
        raise AssertionError("not followed")
        yield  # pragma: no cover

    events = await _all(with_output(replayed([
        target_finished("vm1", None, "Failed", None, "SYS.1003"),
        run_finished({"uuid": "r"})]), follow))
    assert [e.kind for e in events] == ["targetFinished", "runFinished"]
