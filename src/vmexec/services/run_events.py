"""A run's events, live and replayed: target started, output chunk, target finished, run
finished.

While a run is driven by this process its :class:`RunFeed` keeps the target events in memory
(a few hundred bytes per target) and wakes its readers; a reader that comes after the run
ended gets the same events rebuilt from the database (:func:`replayed`). The output of each
started target is not kept here: :func:`with_output` follows the target's execution (the
executions' output hub, or their stored output) and places its chunks between the target's
``targetStarted`` and ``targetFinished``, so only runs someone watches pay for output events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from vmexec.zstack.exec import chunk_data

TARGET_STARTED = "targetStarted"
OUTPUT = "output"
TARGET_FINISHED = "targetFinished"
RUN_FINISHED = "runFinished"

#: Output events a slow reader may have waiting before the followers wait for it.
OUTPUT_BACKLOG = 256


@dataclass(frozen=True, slots=True)
class RunEvent:
    kind: str
    data: Mapping[str, Any]


class Chunk(Protocol):
    """What the executions' output hub yields (``services.output.Chunk``)."""

    @property
    def stream(self) -> str: ...
    @property
    def data(self) -> bytes: ...


#: ``follow(execution uuid)``: the execution's output chunks until it ends.
FollowOutput = Callable[[str], AsyncIterator[Chunk]]


def target_started(vm_uuid: str, vm_name: str, execution_uuid: str) -> RunEvent:
    return RunEvent(TARGET_STARTED, {"vmInstanceUuid": vm_uuid, "vmInstanceName": vm_name,
                                     "executionUuid": execution_uuid})


def target_finished(vm_uuid: str, execution_uuid: str | None, state: str,
                    exit_code: int | None, error_code: str | None) -> RunEvent:
    return RunEvent(TARGET_FINISHED, {"vmInstanceUuid": vm_uuid, "executionUuid": execution_uuid,
                                      "state": state, "exitCode": exit_code,
                                      "errorCode": error_code})


def run_finished(inventory: Mapping[str, Any]) -> RunEvent:
    return RunEvent(RUN_FINISHED, {"inventory": dict(inventory)})


class RunFeed:
    """The events of a run driven by this process, for any number of readers."""

    def __init__(self, initial: Iterable[RunEvent] = ()) -> None:
        self._events = list(initial)
        self._changed = asyncio.Event()
        self._closed = False

    def publish(self, event: RunEvent) -> None:
        self._events.append(event)
        self._wake()

    def close(self) -> None:
        """No more events (after ``runFinished``, or when the process stops)."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self) -> AsyncIterator[RunEvent]:
        """Every event from the first, then each new one, until the feed closes."""
        seen = 0
        while True:
            while seen < len(self._events):
                yield self._events[seen]
                seen += 1
            if self._closed:
                return
            await self._changed.wait()


async def replayed(events: Iterable[RunEvent]) -> AsyncIterator[RunEvent]:
    """Stored events as a stream (a run that ended, or that no process drives)."""
    for event in events:
        yield event


async def with_output(events: AsyncIterator[RunEvent],
                      follow: FollowOutput) -> AsyncIterator[RunEvent]:
    """``events`` with each started target's output chunks after its ``targetStarted`` and
    before its ``targetFinished`` (targets running at once interleave, chunk by chunk)."""
    out: asyncio.Queue[RunEvent | None] = asyncio.Queue(OUTPUT_BACKLOG)
    followers: dict[str, asyncio.Task[None]] = {}

    async def pump_output(vm_uuid: str, execution_uuid: str) -> None:
        async for chunk in follow(execution_uuid):
            await out.put(RunEvent(OUTPUT, {
                "vmInstanceUuid": vm_uuid, "executionUuid": execution_uuid,
                "stream": chunk.stream, **chunk_data(chunk.data)}))

    async def pump() -> None:
        try:
            async for event in events:
                execution = event.data.get("executionUuid")
                if event.kind == TARGET_FINISHED and execution in followers:
                    await followers.pop(execution)  # its output first
                await out.put(event)
                if event.kind == TARGET_STARTED and execution:
                    followers[execution] = asyncio.create_task(
                        pump_output(event.data["vmInstanceUuid"], execution))
        except Exception:
            await out.put(None)  # the reader ends, then gets the error from the pump
            raise
        await out.put(None)

    pumper = asyncio.create_task(pump())
    try:
        while (event := await out.get()) is not None:
            yield event
        await pumper  # raises what the pump raised
    finally:
        for task in (pumper, *followers.values()):
            task.cancel()
        for task in (pumper, *followers.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
