"""What the engine keeps per guest and per run, and how a run's agent calls outlast faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import GuestAgent
from vmexec.execution.cleanup import GuestCleanup
from vmexec.execution.faults import BACKOFF_MAX, CALL_TIMEOUT, await_agent
from vmexec.execution.flag import Flag
from vmexec.execution.guestfiles import RunFiles
from vmexec.execution.models import ExecRequest
from vmexec.execution.platform import GuestPlatform
from vmexec.execution.results import now

T = TypeVar("T")

#: Runs of a guest whose ends time the first status poll of its next run (see Guest).
EXIT_SAMPLES = 8
#: The first status poll never waits longer than this (seconds): a guest of long commands
#: polls early anyway.
FIRST_POLL_MAX = 0.02


@dataclass
class Guest:
    """What the engine learns and keeps per guest."""

    platform: GuestPlatform
    run_dir: str
    cleanup: GuestCleanup
    #: The Linux guest's default shell: bash until a guest shows it has none.
    interpreter: str = "bash"
    #: For its last runs, when they ended (an estimate): seconds from the guest-exec's reply.
    exits: deque[float] = field(default_factory=lambda: deque(maxlen=EXIT_SAMPLES))
    #: For its last status polls, half their round trip: when the agent looked (seconds).
    half_trips: deque[float] = field(default_factory=lambda: deque(maxlen=EXIT_SAMPLES))

    def first_poll(self) -> float:
        """Seconds after a guest-exec's reply to send the run's first status poll, so that
        the agent looks just when the guest's recent commands ended: a poll before that
        costs an agent round trip (and, in an emulated guest, CPU the command needs) and
        the next poll comes a round trip later; one after it is time lost. A quarter of the
        recent runs ended sooner (being early costs more than being late)."""
        if not self.exits:
            return 0.0
        ends = sorted(self.exits)
        trips = sorted(self.half_trips)
        half_trip = trips[len(trips) // 2] if trips else 0.0
        return max(0.0, min(FIRST_POLL_MAX, ends[len(ends) // 4] - half_trip))

    def polled(self, sent: float, replied: float) -> None:
        """Learn the agent's round trip from one status poll (loop times)."""
        self.half_trips.append((replied - sent) / 2)

    def ended(self, running_at: float | None, ended_at: float) -> None:
        """Learn from a run found ended: when (seconds from its guest-exec's reply) the agent
        last found it running (None: never) and then found it ended. It ended in between:
        the middle is the estimate (from the start when no poll found it running, so that a
        first poll that finds the end comes sooner next time)."""
        self.exits.append(((running_at or 0.0) + ended_at) / 2)


@dataclass(slots=True, weakref_slot=True)
class Run:
    """One run of a command in a guest, as the engine follows it. (Slots: a fleet run keeps
    thousands in flight.)"""

    request: ExecRequest
    run_id: str
    guest: Guest
    agent: GuestAgent
    pid: int = 0
    started: datetime = field(default_factory=now)
    killed: bool = False
    #: Whether the run may be running in the guest (a guest-exec for it may have arrived).
    launched: bool = False
    #: Whether the run may have files in the guest (its input, or a guest-exec was sent).
    attempted: bool = False
    #: Whether a guest-exec that starts it went out (its reply may still be awaited).
    starting: bool = False
    #: Set once the start is settled: launched, failed, or given up before the guest-exec.
    start_settled: Flag = field(default_factory=Flag)
    #: Whether the command is known to have ended (or its result is being collected).
    ended: bool = False
    #: How many runs the engine follows now (it paces the status polls by it).
    in_flight: Callable[[], int] = lambda: 1
    #: Whether :meth:`Executor.cancel` stopped it (or kept it from starting).
    cancelled: bool = False
    #: Whether a cancel is deciding (waiting for the start, looking at the status).
    cancelling: bool = False
    #: The run's files, once it has some to follow or recover.
    files: RunFiles | None = None
    _wake: Flag = field(default_factory=Flag, init=False, repr=False)

    def wake(self) -> None:
        """End the current :meth:`nap` at once (something changed: poll now)."""
        self._wake.set()

    async def nap(self, seconds: float) -> bool:
        """Sleep ``seconds`` between polls, or less if woken; whether it was woken."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        woken = self._wake.is_set()
        self._wake.clear()
        return woken


async def wait_for_agent(run: Run, fault: agent_errors.AgentError, until: float, *,
                         backoff_max: float = BACKOFF_MAX) -> None:
    """Wait out a transient ``fault`` until the run's agent answers again.

    Raises: ExecError — the VM is gone, or ``until`` (loop time) passed.
    """
    await await_agent(run.agent, fault, until, run_id=run.run_id, started=run.launched,
                      call_timeout=CALL_TIMEOUT, backoff_max=backoff_max)


async def retry(run: Run, step: Callable[[], Awaitable[T]], until: float, *,
                backoff_max: float = BACKOFF_MAX) -> T:
    """``step()``, again after each transient fault once the agent answers, until
    ``until``. Only for steps that may be repeated (reads, idempotent helpers)."""
    while True:
        try:
            return await step()
        except agent_errors.AgentError as exc:
            await wait_for_agent(run, exc, until, backoff_max=backoff_max)
