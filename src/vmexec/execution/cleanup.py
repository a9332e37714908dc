"""Deleting the files of ended runs in a guest, in batches, until it has been done.

Every run leaves files in the guest (output, status, pid, staged input). Once a run has ended
(with a result or an error) they are queued here and deleted together by one cleanup process,
:data:`CLEANUP_DELAY` after the first of them ended and at most every :data:`CLEANUP_INTERVAL`,
so a burst of runs, or a steady stream of them, costs one helper per batch.
A cleanup that fails (the agent not answering) keeps its runs queued and is retried with
backoff; each cleanup also removes, in its directory, files older than the retention
(runs whose cleanup was lost when vmexec restarted). The agent's records of helper
processes (kill, watchdog, cleanup) are reaped here too: it keeps each until it is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import ExecStatus, GuestAgent
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import AgentTarget
from vmexec.execution.background import BackgroundTasks
from vmexec.execution.faults import CALL_TIMEOUT
from vmexec.execution.platform import GuestPlatform

log = logging.getLogger(__name__)

#: Finished runs whose files are deleted together, this long after the first finished.
CLEANUP_DELAY = 2.0
#: A guest gets at most one cleanup this often (seconds) while its runs keep ending. A cleanup
#: costs the guest a process or two, as much as a trivial command: one per batch of runs, not
#: one per run, however slowly a busy guest's runs come in.
CLEANUP_INTERVAL = 10.0
#: A failed cleanup is retried after CLEANUP_DELAY, doubling up to this many seconds.
CLEANUP_RETRY_MAX = 300.0
#: At most this many runs' files are deleted by one cleanup process.
CLEANUP_BATCH = 1000
#: Runs known to have ended are deleted by the platform's plain file removal (one ``rm``, no
#: shell: half what a cleanup costs the guest, and a fleet run's only cleanup in most guests)
#: in batches of at most this many: each names every file, within one agent request.
REMOVE_BATCH = 200
#: A run directory is swept for files older than the retention at most this often, the first
#: time by the first cleanup there this long after the engine first used the guest: the sweep
#: is a process more in the guest (``find``), the files it looks for are rare (runs whose
#: cleanup was lost), and a fleet run's one command per guest should not pay for it.
SWEEP_INTERVAL = 600.0
#: Seconds a run's files may stay in a guest (runs whose cleanup was lost, e.g. when vmexec
#: restarted) before a cleanup in that directory removes them; longer than any run lasts.
DEFAULT_FILE_RETENTION = 7 * 86400.0


@dataclass
class CleanupPolicy:
    """Shared by every guest's cleanup, and settable after the engine was built."""

    #: Seconds after which any run's files in a guest are removed by the next cleanup in
    #: their directory.
    file_retention: float = DEFAULT_FILE_RETENTION


class GuestCleanup:
    """One guest's queue of ended runs whose files still wait to be deleted, and of helper
    processes whose agent records must still be reaped."""

    def __init__(self, target: AgentTarget, platform: GuestPlatform, agents: AgentDirectory,
                 background: BackgroundTasks, policy: CleanupPolicy) -> None:
        self._target = target
        self._platform = platform
        self._agents = agents
        self._background = background
        self._policy = policy
        #: Ended runs by run dir: kept until a cleanup in the guest has run, however many
        #: attempts that takes.
        self._runs: dict[str, set[str]] = {}
        #: Queued runs whose first process may still live (they ended in an error for
        #: vmexec): the cleanup script looks before it deletes their files.
        self._maybe_alive: set[str] = set()
        self._helpers: list[int] = []
        self._timer: asyncio.TimerHandle | None = None
        #: Cleanups that failed in a row (the next attempt waits longer).
        self._failures = 0
        self._cleaning = asyncio.Lock()
        #: Loop time the last cleanup started.
        self._last_cleanup = float("-inf")
        #: Loop time of the last sweep of each run dir (as if one when the guest was first
        #: used).
        self._swept: dict[str, float] = {}
        self._first_used: float | None = None

    def queue(self, run_dir: str, run_id: str, *, collected: bool = True) -> None:
        """Queue the files of an ended run for deletion. A collected run proves the agent
        answers: a cleanup waiting out a failure is brought forward."""
        self._runs.setdefault(run_dir, set()).add(run_id)
        if collected:
            self._maybe_alive.discard(run_id)
        else:
            self._maybe_alive.add(run_id)
        loop = asyncio.get_running_loop()
        if self._first_used is None:
            self._first_used = loop.time()
        due = max(loop.time() + CLEANUP_DELAY, self._last_cleanup + CLEANUP_INTERVAL)
        if self._timer is not None:
            if not collected or self._timer.when() <= due:
                return
            self._timer.cancel()
        self._timer = loop.call_at(due, self._spawn)

    def reap(self, pid: int) -> None:
        """Read the final status of helper process ``pid`` with a later cleanup."""
        self._helpers.append(pid)

    async def close(self) -> None:
        """Delete what is queued now, once (best effort), and schedule nothing more."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.run(retry=False)

    def _spawn(self) -> None:
        self._timer = None
        if self._background.closed:
            return
        self._background.spawn(self.run())

    async def run(self, *, retry: bool = True) -> None:
        """Delete the queued runs' files (and, in each directory, any older than the
        retention); what could not be deleted stays queued and is retried with backoff."""
        if not self._runs and not self._helpers:
            return  # nothing to do: do not (re)connect to the agent for nothing
        async with self._cleaning:
            self._last_cleanup = asyncio.get_running_loop().time()
            try:
                await self._delete(self._agents.get(self._target))
                # Runs still going in the guest stay queued: ask again later, less often.
                self._failures = self._failures + 1 if self._runs else 0
            except agent_errors.DomainNotFound:
                self._runs.clear()  # the VM is gone, and its files with it
                self._maybe_alive.clear()
                self._helpers.clear()
                return
            except agent_errors.AgentError as exc:
                self._failures += 1
                log.info("could not clean up ended runs on %s (attempt %d): %s",
                         self._target, self._failures, exc)
        if retry and self._runs and self._timer is None:
            delay = min(CLEANUP_DELAY * 2 ** self._failures, CLEANUP_RETRY_MAX)
            self._timer = asyncio.get_running_loop().call_later(delay, self._spawn)

    async def _delete(self, agent: GuestAgent) -> None:
        """Raises: AgentError (what is still queued stays queued)."""
        for run_dir in list(self._runs):
            run_ids = sorted(self._runs.get(run_dir, ()))[:CLEANUP_BATCH]
            if not run_ids:
                self._runs.pop(run_dir, None)
                continue
            retention = self._policy.file_retention
            now = asyncio.get_running_loop().time()
            last = self._swept.get(run_dir, self._first_used or now)
            sweep = now - last >= min(SWEEP_INTERVAL, retention)
            launch = None
            if (not sweep and len(run_ids) <= REMOVE_BATCH
                    and self._maybe_alive.isdisjoint(run_ids)):
                launch = self._platform.remove(run_dir, run_ids)
            if launch is None:
                launch = self._platform.cleanup(run_dir, run_ids, retention if sweep else None)
            pid = await agent.exec(launch.path, launch.args, capture_output=launch.capture_output,
                                   timeout=CALL_TIMEOUT)
            status = await _wait_exit(agent, pid, CALL_TIMEOUT)
            if status is None:
                self._helpers.append(pid)  # slow: reaped later, its runs retried
                continue
            if sweep:
                self._swept[run_dir] = now
            # It names the runs it left alone because they still run.
            running = set(status.stdout.decode("ascii", errors="replace").split())
            left = self._runs.get(run_dir, set())
            left.difference_update(set(run_ids) - running)
            self._maybe_alive.difference_update(set(run_ids) - running)
            if not left:
                self._runs.pop(run_dir, None)
        # The agent keeps a record of every process until its status is read.
        still = []
        for pid in self._helpers:
            with contextlib.suppress(agent_errors.AgentCommandError):
                if not (await agent.exec_status(pid, timeout=CALL_TIMEOUT)).exited:
                    still.append(pid)
        self._helpers = still


async def _wait_exit(agent: GuestAgent, pid: int, seconds: float) -> ExecStatus | None:
    """Process ``pid``'s final status, if it exited within ``seconds`` (its agent record is
    then freed).

    Raises: AgentError.
    """
    loop = asyncio.get_running_loop()
    until, delay = loop.time() + seconds, 0.01
    while True:
        if (status := await agent.exec_status(pid, timeout=CALL_TIMEOUT)).exited:
            return status
        if loop.time() >= until:
            return None
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.2)
