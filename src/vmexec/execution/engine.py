"""The exec service: run a command in a guest through its agent and return what happened.

One ``guest-exec`` starts the run (see :mod:`.linux` / :mod:`.windows`); ``guest-exec-status``
is polled with a short, growing interval (no fixed 1 s sleep), so a trivial command returns in
about the agent's own round-trip time; the output is then read from the run's files in the
guest.  Those files also hold the status, so when the agent's one "exited" reply is lost, or
vmexec restarted, :meth:`Executor.recover` still gets the result.  At the deadline vmexec kills
the run's whole process tree in the guest; a run that lasts gets a watchdog in the guest too.
:meth:`Executor.stream` yields the output while the command runs (adaptive polling of the
run's files, see :mod:`.waiting`); :meth:`Executor.cancel` stops a run with the same kill.

This module is the :class:`Executor` and a run's main flow (start, wait, collect); beside it:
:mod:`.runs` (per-guest and per-run state, fault-tolerant calls), :mod:`.staging` (large
input through guest files), :mod:`.guest_helpers` (kill, watchdog, adopting a run whose start
reply was lost), :mod:`.cleanup` (deleting ended runs' files), :mod:`.following` (the
growing output files), :mod:`.cancelling` and :mod:`.results` (pure).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from datetime import datetime

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import ExecStatus
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import AgentTarget
from vmexec.execution import errors
from vmexec.execution.background import BackgroundTasks
from vmexec.execution.cancelling import NeverStarted, cancel_followed, cancel_unfollowed
from vmexec.execution.cleanup import (
    CLEANUP_DELAY,
    DEFAULT_FILE_RETENTION,
    CleanupPolicy,
    GuestCleanup,
)
from vmexec.execution.faults import (
    CALL_TIMEOUT,
    ORPHAN_BACKOFF,
    ORPHAN_WATCH,
    never_sent,
    transient,
    unavailable,
)
from vmexec.execution.files import GuestFiles
from vmexec.execution.following import OutputFollower
from vmexec.execution.guest_helpers import KILL_WAIT, adopt, kill, stop_if_started
from vmexec.execution.guestfiles import RunFiles
from vmexec.execution.linux import LinuxPlatform
from vmexec.execution.models import (
    AGENT_OUTPUT_CAP,
    ExecRequest,
    ExecResult,
    Outcome,
    OutputChunk,
    Platform,
    Shell,
    StreamOutput,
)
from vmexec.execution.platform import GuestPlatform, KillReason, check_run_id
from vmexec.execution.results import (
    exec_result,
    new_run_id,
    now,
    outcome_of,
    setup_error,
    shell_status,
    validate,
)
from vmexec.execution.runs import Guest, Run, retry, wait_for_agent
from vmexec.execution.staging import stage_input
from vmexec.execution.status import Status, split_inline
from vmexec.execution.waiting import wait_for_end
from vmexec.execution.windows import WindowsPlatform

#: What the service, tests and benchmarks import from here (some of it defined beside).
__all__ = ["CALL_TIMEOUT", "CLEANUP_DELAY", "PLATFORMS", "Executor", "new_run_id", "validate"]

log = logging.getLogger(__name__)

PLATFORMS: dict[Platform, GuestPlatform] = {
    Platform.LINUX: LinuxPlatform(),
    Platform.WINDOWS: WindowsPlatform(),
}
#: The VM is gone: whatever ran in it is gone too.
_GONE_REASONS = frozenset({errors.UnavailableReason.VM_NOT_FOUND,
                           errors.UnavailableReason.VM_NOT_RUNNING,
                           errors.UnavailableReason.NO_AGENT_CHANNEL})


class Executor:
    """Runs commands in guests. One instance serves every VM; safe for concurrent use.

    Raises (from every method): :class:`vmexec.execution.errors.ExecError` subclasses.
    """

    def __init__(self, agents: AgentDirectory, *,
                 file_retention: float = DEFAULT_FILE_RETENTION) -> None:
        self.agents = agents
        self._cleanup_policy = CleanupPolicy(file_retention)
        self._guests: dict[AgentTarget, Guest] = {}
        self._background = BackgroundTasks()
        #: Runs followed here, by run id: what :meth:`cancel` marks and stops.
        self._active: weakref.WeakValueDictionary[str, Run] = weakref.WeakValueDictionary()
        #: Runs not followed here that a :meth:`cancel` is stopping right now.
        self._cancelling: set[str] = set()

    @property
    def file_retention(self) -> float:
        """Seconds after which any run's files in a guest are removed by the next cleanup
        in their directory (settable: it applies to every cleanup from then on)."""
        return self._cleanup_policy.file_retention

    @file_retention.setter
    def file_retention(self, seconds: float) -> None:
        self._cleanup_policy.file_retention = seconds

    # -- public ---------------------------------------------------------------------------

    async def run(self, target: AgentTarget, request: ExecRequest, *,
                  run_id: str | None = None) -> ExecResult:
        """Run ``request`` in the guest behind ``target`` until it exits or times out (or
        :meth:`cancel` stops it).

        ``run_id`` (32 hex chars, default: a new one) names the run in the guest, so that
        :meth:`recover` can collect its result after a lost reply or a restart, and
        :meth:`cancel` can stop it.
        """
        result: ExecResult | None = None
        async for item in self._execute(self._new_run(target, request, run_id), follow=False):
            if isinstance(item, ExecResult):
                result = item
        assert result is not None
        return result

    def stream(self, target: AgentTarget, request: ExecRequest, *,
               run_id: str | None = None, watched: Callable[[], bool] | None = None
               ) -> AsyncIterator[OutputChunk | ExecResult]:
        """Like :meth:`run`, yielding output chunks as they appear and the result last.

        Costs a command that ends within :data:`~.waiting.FOLLOW_AFTER` what :meth:`run`
        does; then the output files are polled adaptively (see :mod:`.waiting`): at the
        live pace while ``watched()`` (default: always), at a slow one while not (nobody
        reads the output now; it costs the guest agent calls all the same). Each
        stream's chunks come in order, cut on UTF-8 character boundaries, and together are
        its ``data`` in the result (they stop at ``max_output_bytes``, as the data does).
        The run can be cancelled from the moment this returns, before any iteration.
        """
        return self._execute(self._new_run(target, request, run_id), follow=True,
                             watched=watched)

    async def cancel(self, target: AgentTarget, run_id: str, *,
                     platform: Platform = Platform.LINUX) -> bool:
        """Stop run ``run_id``: kill its whole process tree in the guest (as at a timeout).

        A run followed here (its :meth:`run`, :meth:`stream` or :meth:`recover` is going)
        then ends with ``Outcome.CANCELLED`` and its output so far; one whose guest-exec has
        not gone out never starts. A run that is not followed here (vmexec restarted) is
        found by its files in the guest and killed there; the marker file it leaves makes a
        later :meth:`recover` report ``CANCELLED``. Returns whether this call stopped
        something: False for a run that ended, was cancelled already (or is being
        cancelled), or left no trace.

        Raises:
            GuestUnavailable: the guest did not answer long enough to stop it.
        """
        check_run_id(run_id)
        run = self._active.get(run_id)
        if run is not None:
            return await cancel_followed(run)
        if run_id in self._cancelling:
            return False
        self._cancelling.add(run_id)
        try:
            guest = self._guest(target, platform)
            return await cancel_unfollowed(
                Run(ExecRequest("(cancelled)", platform=platform), run_id, guest,
                    self.agents.get(target), launched=True))
        finally:
            self._cancelling.discard(run_id)

    async def recover(self, target: AgentTarget, run_id: str, *,
                      platform: Platform = Platform.LINUX,
                      max_output_bytes: int | None = None,
                      timeout: float = 60.0) -> ExecResult:
        """Collect the result of run ``run_id`` from its files in the guest.

        Waits at most ``timeout`` seconds for a run that is still going, then kills it.

        Raises:
            ResultLost: the guest has no trace of the run.
        """
        guest = self._guest(target, platform)
        agent = self.agents.get(target)
        # The command itself is in the guest already; the run only needs the output limit.
        limit = AGENT_OUTPUT_CAP if max_output_bytes is None else max_output_bytes
        run = Run(ExecRequest("(recovered)", platform=platform, max_output_bytes=limit),
                  check_run_id(run_id), guest, agent, launched=True,
                  in_flight=self._active.__len__)
        run.start_settled.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._active[run_id] = run
        try:
            while True:
                files = run.files = RunFiles(agent, guest.platform, run_id, None)
                try:
                    result = await self._recover(run, files, deadline)
                    break
                except agent_errors.AgentError as exc:
                    # The guest is the only place the result is: wait for its agent to come
                    # back.
                    try:
                        await wait_for_agent(run, exc, deadline + KILL_WAIT)
                    except errors.GuestUnavailable as gave_up:
                        self._watch_if_orphaned(run, gave_up)
                        if files.run_dir is not None:  # to be deleted once the guest answers
                            guest.cleanup.queue(files.run_dir, run_id, collected=False)
                        raise
        finally:
            run.ended = True
            self._unregister(run)
        assert files.run_dir is not None
        guest.cleanup.queue(files.run_dir, run_id)
        return result

    async def _recover(self, run: Run, files: RunFiles, deadline: float) -> ExecResult:
        run_dir = await files.locate()
        if run_dir is None:
            raise errors.ResultLost(
                f"run {run.run_id} left no trace in the guest (never started, or cleaned up)")
        loop = asyncio.get_running_loop()
        status = await files.wait_status(max(0.0, deadline - loop.time()))
        if status is None and await files.alive():
            if not run.killed:
                pid = await files.pid()
                await kill(run, pid, run_dir)
                run.killed = True
            status = await files.wait_status(5.0)
        run.ended = True
        cancelled = run.cancelled or await files.exists(KillReason.CANCELLED)
        timed_out = run.killed or await files.exists(KillReason.TIMEOUT)
        if status is None and not (cancelled or timed_out):
            # Gone without its EXIT trap's status and not killed by vmexec: the guest
            # restarted under it, or its files went. Its output alone is no result.
            raise errors.ResultLost(
                f"run {run.run_id} ended without a status in the guest (the guest restarted, "
                "or the run's files were removed): its exit status is unknown")
        return await _collect(run, files, status, finished=now(),
                              outcome=outcome_of(cancelled=cancelled, timed_out=timed_out))

    def files(self, target: AgentTarget, platform: Platform = Platform.LINUX) -> GuestFiles:
        """Copies files into and out of the guest behind ``target`` (see :mod:`.files`)."""
        return GuestFiles(self.agents.get(target), platform)

    async def aclose(self) -> None:
        """Delete the files of ended runs now (best effort) and stop background work."""
        self._background.close()
        for guest in list(self._guests.values()):
            await guest.cleanup.close()
        await self._background.cancel()

    # -- one run --------------------------------------------------------------------------

    def _guest(self, target: AgentTarget, platform: Platform) -> Guest:
        guest = self._guests.get(target)
        if guest is None or guest.platform is not PLATFORMS[platform]:
            p = PLATFORMS[platform]
            cleanup = GuestCleanup(target, p, self.agents, self._background,
                                   self._cleanup_policy)
            guest = self._guests[target] = Guest(p, p.run_dirs[0], cleanup)
        return guest

    def _new_run(self, target: AgentTarget, request: ExecRequest, run_id: str | None) -> Run:
        """A run of ``request``, known to :meth:`cancel` from now on, until it ends (or its
        iterator is dropped unstarted: the registry holds runs weakly)."""
        run = Run(request, run_id or new_run_id(), self._guest(target, request.platform),
                  self.agents.get(target), in_flight=self._active.__len__)
        self._active[run.run_id] = run
        return run

    def _unregister(self, run: Run) -> None:
        if self._active.get(run.run_id) is run:
            del self._active[run.run_id]

    async def _start(self, run: Run, deadline: float) -> None:
        """Start the run (falling back to ``/bin/sh`` in a guest without bash).

        Transient faults are waited out until ``deadline``. A ``guest-exec`` whose reply was
        lost may have started the run: the guest is asked before it is sent again, and a run
        found there is adopted (so it runs once, whatever was lost on the way).

        Raises:
            NeverStarted: it was cancelled before its guest-exec went out.
        """
        run.start_settled.clear()
        run.launched = False
        try:
            await self._launch(run, deadline)
        finally:
            run.starting = False
            run.start_settled.set()

    async def _launch(self, run: Run, deadline: float) -> None:
        guest = run.guest
        _check_not_cancelled(run)
        staged = await retry(run, lambda: stage_input(run), deadline)
        while True:
            launch = guest.platform.launch(run.request, run.run_id, run_dir=guest.run_dir,
                                           interpreter=guest.interpreter, staged=staged)
            _check_not_cancelled(run)  # (no await from here to the guest-exec going out)
            run.attempted = run.starting = True
            try:
                run.pid = await run.agent.exec(
                    launch.path, launch.args, input_data=launch.input_data,
                    capture_output=launch.capture_output, timeout=CALL_TIMEOUT)
            except agent_errors.AgentCommandError as exc:
                if isinstance(exc, agent_errors.AgentCommandDisabled) or launch.path != "bash":
                    raise
                if run.request.shell is Shell.BASH:
                    raise errors.GuestSetupError("bash not found in the guest",
                                                 errors.SetupReason.INTERPRETER_MISSING) from None
                guest.interpreter = "/bin/sh"  # this guest has no bash: plain sh it is
                continue
            except agent_errors.AgentError as exc:
                if not transient(exc):
                    raise
                if never_sent(exc):
                    run.starting = False
                    await wait_for_agent(run, exc, deadline)
                    continue
                # It may run, so it may be killed: wait as long as a running command would.
                run.launched = True
                await wait_for_agent(run, exc, deadline + KILL_WAIT)
                if await retry(run, lambda: adopt(run), deadline + KILL_WAIT):
                    return
                run.launched = run.starting = False
                continue
            run.launched = True
            return

    async def _execute(self, run: Run, *, follow: bool,
                       watched: Callable[[], bool] | None = None
                       ) -> AsyncIterator[OutputChunk | ExecResult]:
        follower: OutputFollower | None = None
        failed = False
        steps = self._run_until_end(run, follow, watched)
        try:
            async for item in steps:
                if isinstance(item, OutputFollower):
                    follower = item
                else:
                    yield item
        except NeverStarted:
            # Cancelled before its guest-exec went out: it never runs (its staged input may
            # be in the guest, though).
            if run.attempted:
                run.guest.cleanup.queue(run.guest.run_dir, run.run_id)
            yield exec_result(run.run_id, None, Outcome.CANCELLED, StreamOutput(),
                              StreamOutput(), run.started, now())
        except Exception:
            failed = True
            raise
        finally:
            await steps.aclose()  # now, also when the caller dropped this iterator
            run.ended = True
            run.start_settled.set()
            self._unregister(run)
            if follower is not None and failed:
                # In the background: an agent that does not answer must not delay the error.
                self._background.spawn(follower.close())
            elif follower is not None:
                await follower.close()  # (a no-op at the end: closed before the result)

    async def _run_until_end(self, run: Run, follow: bool,
                             watched: Callable[[], bool] | None = None
                             ) -> AsyncGenerator[OutputChunk | ExecResult | OutputFollower]:
        """Start the run and follow it to its result (yielding its output follower first
        when ``follow``, for the caller to close whatever happens).

        Raises: NeverStarted, ExecError.
        """
        request, guest = run.request, run.guest
        validate(request)
        loop = asyncio.get_running_loop()
        # The command's own deadline, from the request: time spent waiting for a paused VM
        # or a restarting host counts, so a command never lasts longer than it may.
        deadline = loop.time() + request.timeout
        reply: ExecStatus | None = None
        status: Status | None = None
        follower: OutputFollower | None = None
        try:
            while True:
                await self._start(run, deadline)
                files = run.files = RunFiles(run.agent, guest.platform, run.run_id,
                                             guest.run_dir)
                if follow:
                    follower = OutputFollower(files, request.max_output_bytes, watched)
                    yield follower
                reply = status = None
                async for item in wait_for_end(run, files, deadline, follower):
                    if isinstance(item, ExecStatus):
                        reply = item
                    elif isinstance(item, Status):
                        status = item
                        guest.cleanup.reap(run.pid)  # reap once the pipe holder is gone
                    else:
                        yield item
                finished = now()
                inline = (b"", b"")
                if reply is not None:
                    status, out = split_inline(reply.stdout)
                    inline = (out, reply.stderr)
                if status is not None and status.setup_error == "run-dir-unwritable":
                    dirs = guest.platform.run_dirs
                    index = dirs.index(guest.run_dir) + 1 if guest.run_dir in dirs else len(dirs)
                    if index < len(dirs):
                        guest.run_dir = dirs[index]
                        if follower is not None:
                            await follower.close()
                        continue
                break
            if status is not None and status.setup_error:
                guest.cleanup.queue(guest.run_dir, run.run_id)  # e.g. its .sh file
                raise setup_error(status, reply.stderr if reply else b"",
                                  guest.platform.run_dirs)
            # The command has ended (or was killed): its result is in the guest, worth
            # waiting for while a fault lasts, as long as a kill may take past the deadline
            # (and a few seconds at least: it may have ended just in time).
            until = max(deadline + KILL_WAIT, loop.time() + CALL_TIMEOUT)
            if status is None and reply is None:
                # The exited reply never reached us: the guest's files have the result.
                status = await retry(run, lambda: files.wait_status(
                    max(1.0, deadline + KILL_WAIT - loop.time())), until)
            elif reply is not None and (status is None or reply.signal is not None):
                # Killed by a signal before (or without) its EXIT trap: the agent knows best,
                # and the output is in the files.
                status = Status(exit_code=shell_status(reply), run_dir=guest.run_dir)
                inline = (b"", b"")
            timed_out = run.killed or (status is not None and status.timed_out) or (
                reply is None and not run.cancelled
                and await retry(run, lambda: files.exists(KillReason.TIMEOUT), until))
            if status is not None and status.unstored:
                raise errors.OutputNotStored(
                    f"the guest could not store the command's output in {guest.run_dir} "
                    f"(no space left?): the command ran and exited with {status.exit_code}, "
                    "its output is incomplete", ran=True, exit_code=status.exit_code)
            got = status
            already = follower.already_read() if follower is not None else ((), ())
            result = await retry(run, lambda: _collect(
                run, files, got, finished=finished, inline=inline, already=already,
                outcome=outcome_of(cancelled=run.cancelled, timed_out=timed_out)), until)
        except agent_errors.AgentError as exc:
            _ended_in_error(run)
            raise unavailable(exc) from None
        except errors.GuestUnavailable as exc:
            self._watch_if_orphaned(run, exc)
            _ended_in_error(run)
            raise
        except NeverStarted:
            raise
        except Exception:
            _ended_in_error(run)
            raise
        if follower is not None:
            await follower.close()
            for chunk in follower.rest(result.stdout, result.stderr):
                yield chunk
        guest.cleanup.queue(guest.run_dir, run.run_id)
        yield result

    # -- runs given up on ---------------------------------------------------------------

    def _watch_if_orphaned(self, run: Run, exc: errors.GuestUnavailable) -> None:
        """A run given up on while the VM may still run it (its agent silent up to the
        deadline: a frozen VM, a host that does not come back): stop it if the agent answers
        again within :data:`ORPHAN_WATCH`, so it does not run on behind the client's back
        (the client was told it may have started, and its run id)."""
        if not run.launched or exc.reason in _GONE_REASONS:
            return
        self._background.spawn(_stop_orphan(run))


async def _stop_orphan(run: Run) -> None:
    """Kill a run given up on once its guest answers again (within ORPHAN_WATCH)."""
    until = asyncio.get_running_loop().time() + ORPHAN_WATCH
    try:
        await retry(run, lambda: stop_if_started(run), until, backoff_max=ORPHAN_BACKOFF)
    except (errors.ExecError, agent_errors.AgentError) as exc:
        log.warning("run %s: could not stop it after giving up on it: %s", run.run_id, exc)
        return
    run.guest.cleanup.queue(run.guest.run_dir, run.run_id)


async def _collect(run: Run, files: RunFiles, status: Status | None, *,
                   outcome: Outcome, finished: datetime,
                   inline: tuple[bytes, bytes] = (b"", b""),
                   already: tuple[Sequence[bytes], Sequence[bytes]] = ((), ())) -> ExecResult:
    limit = run.request.max_output_bytes
    stdout, stderr = await files.read_outputs(limit, status, inline=inline, already=already)
    code = status.exit_code if status else None
    return exec_result(run.run_id, code, outcome, stdout, stderr, run.started, finished)


def _check_not_cancelled(run: Run) -> None:
    """Raises: NeverStarted — a cancel came before this guest-exec went out (one waiting
    for an earlier guest-exec that certainly did not go out counts too)."""
    if run.cancelled or run.cancelling:
        run.cancelled = True
        raise NeverStarted


def _ended_in_error(run: Run) -> None:
    """A run that ends in an error may have left files: queue them for deletion too (not
    when cancelled: a restarted vmexec may still recover the run)."""
    if run.attempted:
        run.guest.cleanup.queue(run.guest.run_dir, run.run_id, collected=False)
