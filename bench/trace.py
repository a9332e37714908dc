"""Where the engine's time goes: every agent call a run makes, with its duration.

The transport's ``execute`` is wrapped on one agent client (a measurement, not a change to
vmexec). Calls made by the traced task are the run's own; calls from other tasks are the
engine's deferred work (it batches file closes and the removal of run files every 2 s).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vmexec.agent.client import GuestAgent

Call = tuple[str, float]  # agent command, milliseconds


@dataclass
class CallLog:
    #: The task whose calls are a run's own (the caller of :func:`record_calls`).
    owner: asyncio.Task[Any] | None
    calls: list[Call] = field(default_factory=list)
    deferred: list[Call] = field(default_factory=list)


def record_calls(agent: GuestAgent) -> CallLog:
    """Wrap ``agent``'s transport so every call is logged; call from the task that will run
    the traced commands."""
    log = CallLog(owner=asyncio.current_task())
    transport = agent.transport
    original = transport.execute

    async def execute(command: str, arguments: Mapping[str, Any] | None = None, *,
                      timeout: float = 5.0) -> Any:
        started = time.perf_counter()
        try:
            return await original(command, arguments, timeout=timeout)
        finally:
            ms = (time.perf_counter() - started) * 1000
            own = asyncio.current_task() is log.owner
            (log.calls if own else log.deferred).append((command, ms))

    transport.execute = execute  # type: ignore[method-assign]
    return log


def per_command(runs: list[list[Call]], average: Callable[[list[float]], float]
                ) -> dict[str, tuple[float, float]]:
    """Per agent command: the ``average`` over runs of its calls and of their ms."""
    commands = sorted({command for calls in runs for command, _ in calls})
    return {c: (average([sum(1 for k, _ in calls if k == c) for calls in runs]),
                average([sum(ms for k, ms in calls if k == c) for calls in runs]))
            for c in commands}


@dataclass(frozen=True, slots=True)
class RunBreakdown:
    """Per traced run: wall time, and per agent command the calls and their ms."""

    runs: int
    wall_ms: float
    calls: dict[str, tuple[float, float]]

    @property
    def agent_ms(self) -> float:
        return sum(ms for _, ms in self.calls.values())


def breakdown(runs: list[tuple[float, list[Call]]]) -> RunBreakdown:
    """Medians (robust to this machine's spikes) of ``runs``: (wall ms, the run's own calls)."""
    return RunBreakdown(len(runs), statistics.median(w for w, _ in runs),
                        per_command([calls for _, calls in runs], statistics.median))


def deferred_breakdown(calls: list[Call], runs: int) -> RunBreakdown:
    """Deferred calls spread evenly over the ``runs`` that caused them (a mean per run; no
    wall time of their own)."""
    return RunBreakdown(runs, 0.0, per_command([calls] + [[] for _ in range(runs - 1)],
                                               statistics.fmean))
