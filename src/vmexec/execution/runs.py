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
from vmexec.execution.guestfiles import RunFiles
from vmexec.execution.models import ExecRequest
from vmexec.execution.platform import GuestPlatform
from vmexec.execution.results import now

T = TypeVar("T")

#: Runs of a guest whose end times the first status poll of its next run (see Guest).
EXIT_SAMPLES = 8
#: The first status poll waits this share of the quickest of those ends ...
FIRST_POLL_SHARE = 0.8
#: ... and never longer than this (seconds): a guest of long commands polls early anyway.
FIRST_POLL_MAX = 0.02


@dataclass
class Guest:
    """What the engine learns and keeps per guest."""

    platform: GuestPlatform
    run_dir: str
    cleanup: GuestCleanup
    #: The Linux guest's default shell: bash until a guest shows it has none.
    interpreter: str = "bash"
    #: When its last runs were seen to have exited: seconds from the guest-exec's reply to
    #: the status poll that found it (the time the poll went out).
    exits: deque[float] = field(default_factory=lambda: deque(maxlen=EXIT_SAMPLES))

    def first_poll(self) -> float:
        """Seconds after a guest-exec's reply to send the run's first status poll: a poll
        before the command can have ended costs an agent round trip (and, in an emulated
        guest, CPU the command needs). Just before the quickest recent end: a quick command
        is found at the first poll; a guest's ends are learned down again when they get
        quicker, since a first poll that finds it ended is a quicker sample still."""
        if not self.exits:
            return 0.0
        return min(FIRST_POLL_MAX, FIRST_POLL_SHARE * min(self.exits))


@dataclass
class Run:
    """One run of a command in a guest, as the engine follows it."""

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
    start_settled: asyncio.Event = field(default_factory=asyncio.Event)
    #: Whether the command is known to have ended (or its result is being collected).
    ended: bool = False
    #: Whether :meth:`Executor.cancel` stopped it (or kept it from starting).
    cancelled: bool = False
    #: Whether a cancel is deciding (waiting for the start, looking at the status).
    cancelling: bool = False
    #: The run's files, once it has some to follow or recover.
    files: RunFiles | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)

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
