"""Where the engine's time goes: every agent call a run makes, with its duration.

The transport's ``execute`` is wrapped on one agent client (a measurement, not a change to
vmexec). Calls made by the traced task are the run's own; calls from other tasks are the
engine's deferred work (it batches file closes and the removal of run files every 2 s).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Mapping
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


def mean_calls(runs: list[list[Call]]) -> dict[str, tuple[float, float]]:
    """Per agent command: mean calls per run and mean ms per run."""
    n = len(runs)
    per: dict[str, tuple[float, float]] = {}
    for calls in runs:
        for command, ms in calls:
            count, total = per.get(command, (0.0, 0.0))
            per[command] = (count + 1 / n, total + ms / n)
    return per


@dataclass(frozen=True, slots=True)
class RunBreakdown:
    """Means per traced run: wall time, and per agent command the calls and their ms."""

    runs: int
    wall_ms: float
    calls: dict[str, tuple[float, float]]

    @property
    def agent_ms(self) -> float:
        return sum(ms for _, ms in self.calls.values())


def breakdown(runs: list[tuple[float, list[Call]]]) -> RunBreakdown:
    """``runs``: (wall ms, the run's own calls) per run."""
    return RunBreakdown(len(runs), statistics.fmean(w for w, _ in runs),
                        mean_calls([calls for _, calls in runs]))


def deferred_breakdown(calls: list[Call], runs: int) -> RunBreakdown:
    """Deferred calls spread over the ``runs`` that caused them (no wall time of their own)."""
    return RunBreakdown(runs, 0.0, mean_calls([calls] + [[] for _ in range(runs - 1)]))
