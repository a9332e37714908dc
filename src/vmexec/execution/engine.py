"""The exec service: run a command in a guest through its agent and return what happened.

One ``guest-exec`` starts the run (see :mod:`.linux` / :mod:`.windows`); ``guest-exec-status``
is polled with a short, growing interval (no fixed 1 s sleep), so a trivial command returns in
about the agent's own round-trip time; the output is then read from the run's files in the
guest.  Those files also hold the status, so when the agent's one "exited" reply is lost, or
vmexec restarted, :meth:`Executor.recover` still gets the result.  At the deadline vmexec kills
the run's whole process tree in the guest; a run that lasts gets a watchdog in the guest too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import ExecStatus, GuestAgent
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import AgentTarget
from vmexec.execution import errors
from vmexec.execution.faults import (
    BACKOFF_MAX,
    ORPHAN_BACKOFF,
    ORPHAN_WATCH,
    await_agent,
    never_sent,
    transient,
    unavailable,
)
from vmexec.execution.guestfiles import RunFiles
from vmexec.execution.linux import LinuxPlatform
from vmexec.execution.models import (
    AGENT_OUTPUT_CAP,
    MAX_COMMAND_CHARS,
    MAX_STDIN_BYTES,
    MAX_TIMEOUT_SECONDS,
    ExecRequest,
    ExecResult,
    Outcome,
    OutputChunk,
    Platform,
    Shell,
    StreamOutput,
)
from vmexec.execution.platform import GuestPlatform, Launch
from vmexec.execution.status import Status, split_inline
from vmexec.execution.windows import WindowsPlatform

log = logging.getLogger(__name__)

T = TypeVar("T")

PLATFORMS: dict[Platform, GuestPlatform] = {
    Platform.LINUX: LinuxPlatform(),
    Platform.WINDOWS: WindowsPlatform(),
}
#: Seconds allowed for one agent round trip before the agent counts as not responding.
CALL_TIMEOUT = 5.0
#: Status polls: first at once, then at a growing interval up to POLL_MAX seconds.
POLL_START, POLL_GROWTH, POLL_MAX = 0.002, 1.3, 0.25
#: A run still going after this many seconds gets a watchdog in the guest.
WATCHDOG_AFTER = 2.0
#: Seconds past the deadline (after the kill) before vmexec stops waiting for the agent.
KILL_WAIT = 15.0
#: How often a long poll also looks at the run's status file (seconds).
HOLDER_CHECK = 1.0
#: Finished runs whose files are deleted together, this long after the first finished.
CLEANUP_DELAY = 2.0
#: Seconds a helper that only looks (e.g. for a run's process) may take in the guest.
LOOK_TIMEOUT = 10.0
#: The VM is gone: whatever ran in it is gone too.
_GONE_REASONS = frozenset({errors.UnavailableReason.VM_NOT_FOUND,
                           errors.UnavailableReason.VM_NOT_RUNNING,
                           errors.UnavailableReason.NO_AGENT_CHANNEL})


def new_run_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


def validate(request: ExecRequest) -> None:
    """Raises: InvalidExecRequest."""
    if not request.command.strip():
        raise errors.InvalidExecRequest("command is empty")
    if len(request.command) > MAX_COMMAND_CHARS:
        raise errors.InvalidExecRequest(f"command is longer than {MAX_COMMAND_CHARS} characters")
    if not 0 < request.timeout <= MAX_TIMEOUT_SECONDS:
        raise errors.InvalidExecRequest(
            f"timeout must be more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds")
    if request.max_output_bytes < 0:
        raise errors.InvalidExecRequest("maxOutputBytes must not be negative")
    if request.stdin and len(request.stdin) > MAX_STDIN_BYTES:
        raise errors.InvalidExecRequest(f"stdin is larger than {MAX_STDIN_BYTES} bytes")


@dataclass
class _Guest:
    """What the engine learns and keeps per guest."""

    platform: GuestPlatform
    run_dir: str
    #: The Linux guest's default shell: bash until a guest shows it has none.
    interpreter: str = "bash"
    #: Finished runs whose files still wait to be deleted, by run dir.
    finished: dict[str, list[str]] = field(default_factory=dict)
    #: Helper processes (kill, watchdog, cleanup) whose agent records must still be reaped.
    helpers: list[int] = field(default_factory=list)
    flush: asyncio.TimerHandle | None = None


@dataclass
class _Run:
    request: ExecRequest
    run_id: str
    guest: _Guest
    agent: GuestAgent
    pid: int = 0
    started: datetime = field(default_factory=_now)
    killed: bool = False
    #: Whether the run may be running in the guest (a guest-exec for it may have arrived).
    launched: bool = False


class Executor:
    """Runs commands in guests. One instance serves every VM; safe for concurrent use.

    Raises (from every method): :class:`vmexec.execution.errors.ExecError` subclasses.
    """

    def __init__(self, agents: AgentDirectory) -> None:
        self.agents = agents
        self._guests: dict[AgentTarget, _Guest] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- public ---------------------------------------------------------------------------

    async def run(self, target: AgentTarget, request: ExecRequest, *,
                  run_id: str | None = None) -> ExecResult:
        """Run ``request`` in the guest behind ``target`` until it exits or times out.

        ``run_id`` (32 hex chars, default: a new one) names the run in the guest, so that
        :meth:`recover` can collect its result after a lost reply or a restart.
        """
        result: ExecResult | None = None
        async for item in self._execute(target, request, run_id, follow=False):
            if isinstance(item, ExecResult):
                result = item
        assert result is not None
        return result

    def stream(self, target: AgentTarget, request: ExecRequest, *,
               run_id: str | None = None) -> AsyncIterator[OutputChunk | ExecResult]:
        """Like :meth:`run`, yielding output chunks as they appear and the result last."""
        return self._execute(target, request, run_id, follow=True)

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
        run = _Run(ExecRequest("(recovered)", platform=platform, max_output_bytes=limit),
                   run_id, guest, agent, launched=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            files = RunFiles(agent, guest.platform, run_id, None)
            try:
                result = await self._recover(run, files, deadline)
                break
            except agent_errors.AgentError as exc:
                # The guest is the only place the result is: wait for its agent to come back.
                try:
                    await self._await_agent(run, exc, deadline + KILL_WAIT)
                except errors.GuestUnavailable as gave_up:
                    self._watch_if_orphaned(target, run, gave_up)
                    raise
        assert files.run_dir is not None
        self._finished(target, guest, files.run_dir, run_id)
        return result

    async def _recover(self, run: _Run, files: RunFiles, deadline: float) -> ExecResult:
        run_dir = await files.locate()
        if run_dir is None:
            raise errors.ResultLost(
                f"run {run.run_id} left no trace in the guest (never started, or cleaned up)")
        loop = asyncio.get_running_loop()
        status = await files.wait_status(max(0.0, deadline - loop.time()))
        if status is None and await files.alive():
            if not run.killed:
                pid = await files.pid()
                await self._helper(run, run.guest.platform.kill(run.run_id, pid, run_dir),
                                   wait=KILL_WAIT, required=True)
                run.killed = True
            status = await files.wait_status(5.0)
        timed_out = run.killed or await files.exists("timeout")
        return await self._collect(run, files, status, timed_out=timed_out, finished=_now())

    async def aclose(self) -> None:
        """Delete the files of collected runs now (best effort) and stop background work."""
        for target, guest in list(self._guests.items()):
            if guest.flush is not None:
                guest.flush.cancel()
                guest.flush = None
            await self._cleanup(target, guest)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one run --------------------------------------------------------------------------

    def _guest(self, target: AgentTarget, platform: Platform) -> _Guest:
        guest = self._guests.get(target)
        if guest is None or guest.platform is not PLATFORMS[platform]:
            p = PLATFORMS[platform]
            guest = self._guests[target] = _Guest(p, p.run_dirs[0])
        return guest

    async def _start(self, run: _Run, deadline: float) -> None:
        """Start the run (falling back to ``/bin/sh`` in a guest without bash).

        Transient faults are waited out until ``deadline``. A ``guest-exec`` whose reply was
        lost may have started the run: the guest is asked before it is sent again, and a run
        found there is adopted (so it runs once, whatever was lost on the way).
        """
        guest = run.guest
        while True:
            launch = guest.platform.launch(run.request, run.run_id, run_dir=guest.run_dir,
                                           interpreter=guest.interpreter)
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
                    await self._await_agent(run, exc, deadline)
                    continue
                # It may run, so it may be killed: wait as long as a running command would.
                run.launched = True
                await self._await_agent(run, exc, deadline + KILL_WAIT)
                if await self._retry(run, lambda: self._adopt(run), deadline + KILL_WAIT):
                    return
                run.launched = False
                continue
            run.launched = True
            return

    async def _adopt(self, run: _Run) -> bool:
        """After a ``guest-exec`` whose reply was lost: whether it started the run; if so
        the run continues with the process the agent started (its pid is in the pid file).

        The agent handles commands in order and answers a ``guest-exec`` only once the
        process exists, so once it answers anything later, the lost one either started a
        process (found here by its pid file or, before it wrote that, by its command line)
        or never will.
        """
        guest = run.guest
        files = RunFiles(run.agent, guest.platform, run.run_id, guest.run_dir)
        pid = await files.pid()
        if pid is None and await files.status() is None:
            launch = guest.platform.find_run(run.run_id, guest.run_dir)
            if launch is None:
                raise errors.GuestUnavailable(
                    f"the agent's reply to the start of run {run.run_id} was lost and this "
                    "guest cannot tell whether it started: it may run",
                    errors.UnavailableReason.AGENT_NOT_RESPONDING)
            if await self._look(run, launch) != 0:
                log.info("run %s: its start was lost before the guest got it", run.run_id)
                return False
            pid = await files.wait_pid(LOOK_TIMEOUT)
        run.pid = pid or 0  # 0: the agent does not know it; the status file will tell
        log.info("run %s: its start reply was lost but it runs (pid %s)", run.run_id, pid)
        return True

    async def _execute(self, target: AgentTarget, request: ExecRequest, run_id: str | None,
                       *, follow: bool) -> AsyncIterator[OutputChunk | ExecResult]:
        validate(request)
        guest = self._guest(target, request.platform)
        run = _Run(request, run_id or new_run_id(), guest, self.agents.get(target))
        loop = asyncio.get_running_loop()
        # The command's own deadline, from the request: time spent waiting for a paused VM
        # or a restarting host counts, so a command never lasts longer than it may.
        deadline = loop.time() + request.timeout
        reply: ExecStatus | None = None
        status: Status | None = None
        try:
            while True:
                await self._start(run, deadline)
                files = RunFiles(run.agent, guest.platform, run.run_id, guest.run_dir)
                reply = status = None
                async for item in self._wait(run, files, deadline, follow):
                    if isinstance(item, ExecStatus):
                        reply = item
                    elif isinstance(item, Status):
                        status = item
                        guest.helpers.append(run.pid)  # reap once the pipe holder is gone
                    else:
                        yield item
                finished = _now()
                inline = (b"", b"")
                if reply is not None:
                    status, out = split_inline(reply.stdout)
                    inline = (out, reply.stderr)
                if status is not None and status.setup_error == "run-dir-unwritable":
                    dirs = guest.platform.run_dirs
                    index = dirs.index(guest.run_dir) + 1 if guest.run_dir in dirs else len(dirs)
                    if index < len(dirs):
                        guest.run_dir = dirs[index]
                        continue
                break
            if status is not None and status.setup_error:
                self._finished(target, guest, guest.run_dir, run.run_id)  # e.g. its .sh file
                raise _setup_error(status, reply.stderr if reply else b"")
            # The command has ended (or was killed): its result is in the guest, worth
            # waiting for while a fault lasts, as long as a kill may take past the deadline
            # (and a few seconds at least: it may have ended just in time).
            until = max(deadline + KILL_WAIT, loop.time() + CALL_TIMEOUT)
            if status is None and reply is None:
                # The exited reply never reached us: the guest's files have the result.
                status = await self._retry(run, lambda: files.wait_status(
                    max(1.0, deadline + KILL_WAIT - loop.time())), until)
            elif reply is not None and (status is None or reply.signal is not None):
                # Killed by a signal before (or without) its EXIT trap: the agent knows best,
                # and the output is in the files.
                status = Status(exit_code=_shell_status(reply), run_dir=guest.run_dir)
                inline = (b"", b"")
            timed_out = run.killed or (status is not None and status.timed_out) or (
                reply is None and await self._retry(run, lambda: files.exists("timeout"), until))
            got = status
            result = await self._retry(run, lambda: self._collect(
                run, files, got, timed_out=timed_out, finished=finished, inline=inline), until)
        except agent_errors.AgentError as exc:
            raise unavailable(exc) from None
        except errors.GuestUnavailable as exc:
            self._watch_if_orphaned(target, run, exc)
            raise
        if follow:
            for chunk in files.unstreamed(result.stdout, result.stderr):
                yield chunk
        self._finished(target, guest, guest.run_dir, run.run_id)
        yield result

    async def _wait(self, run: _Run, files: RunFiles, deadline: float,
                    follow: bool) -> AsyncIterator[OutputChunk | ExecStatus | Status]:
        """Poll until the agent reports the run exited (yielding that reply, which the agent
        gives only once), or its status file shows it ended (yielding that status), or the
        reply is known lost (yielding nothing more); kill the run at the deadline. Transient
        faults are waited out until the deadline and the kill's own wait have passed."""
        loop = asyncio.get_running_loop()
        delay = POLL_START
        watchdog_at = loop.time() + min(WATCHDOG_AFTER, run.request.timeout)
        holder_check = loop.time() + HOLDER_CHECK
        until = deadline + KILL_WAIT
        while True:
            try:
                reply = await run.agent.exec_status(run.pid, timeout=CALL_TIMEOUT)
            except agent_errors.AgentCommandDisabled:
                raise
            except agent_errors.AgentCommandError:
                return  # the agent forgot the pid: its exited reply went astray
            except agent_errors.AgentError as exc:
                await self._await_agent(run, exc, until)
                continue
            if reply.exited:
                yield reply
                return
            now = loop.time()
            chunks: list[OutputChunk] = []
            status: Status | None = None
            try:
                if follow:
                    chunks = await files.read_new()
                if now >= holder_check:
                    # Still "running" a while: a background process may hold the agent's
                    # pipe after the command itself ended; the status file says so.
                    holder_check = now + HOLDER_CHECK
                    status = await files.status()
                if status is None and not run.killed and now >= deadline:
                    await self._helper(run, run.guest.platform.kill(
                        run.run_id, run.pid, run.guest.run_dir), wait=KILL_WAIT, required=True)
                    run.killed = True
                elif status is None and now >= watchdog_at and not run.killed:
                    watchdog_at = float("inf")
                    launch = run.guest.platform.watchdog(
                        run.run_id, run.pid, run.guest.run_dir, deadline - now + 2)
                    if launch is not None and run.pid:
                        await self._helper(run, launch)
            except agent_errors.AgentError as exc:
                await self._await_agent(run, exc, until)
            for chunk in chunks:
                yield chunk
            if status is not None:
                yield status
                return
            if run.killed and now >= until:
                return
            wake = delay if run.killed else min(delay, max(deadline - now, 0.001))
            await asyncio.sleep(max(wake, 0.05) if follow else wake)
            delay = min(delay * POLL_GROWTH, POLL_MAX)

    # -- faults ---------------------------------------------------------------------------

    async def _await_agent(self, run: _Run, fault: agent_errors.AgentError, until: float, *,
                           backoff_max: float = BACKOFF_MAX) -> None:
        """Wait out a transient ``fault`` until the agent answers again.

        Raises: ExecError — the VM is gone, or ``until`` (loop time) passed.
        """
        await await_agent(run.agent, fault, until, run_id=run.run_id, started=run.launched,
                          call_timeout=CALL_TIMEOUT, backoff_max=backoff_max)

    async def _retry(self, run: _Run, step: Callable[[], Awaitable[T]], until: float, *,
                     backoff_max: float = BACKOFF_MAX) -> T:
        """``step()``, again after each transient fault once the agent answers, until
        ``until``. Only for steps that may be repeated (reads, idempotent helpers)."""
        while True:
            try:
                return await step()
            except agent_errors.AgentError as exc:
                await self._await_agent(run, exc, until, backoff_max=backoff_max)

    def _watch_if_orphaned(self, target: AgentTarget, run: _Run,
                           exc: errors.GuestUnavailable) -> None:
        """A run given up on while the VM may still run it (its agent silent up to the
        deadline: a frozen VM, a host that does not come back): stop it if the agent answers
        again within :data:`ORPHAN_WATCH`, so it does not run on behind the client's back
        (the client was told it may have started, and its run id)."""
        if not run.launched or exc.reason in _GONE_REASONS:
            return
        task = asyncio.get_running_loop().create_task(self._stop_orphan(target, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop_orphan(self, target: AgentTarget, run: _Run) -> None:
        until = asyncio.get_running_loop().time() + ORPHAN_WATCH
        try:
            await self._retry(run, lambda: self._stop_if_started(run), until,
                              backoff_max=ORPHAN_BACKOFF)
        except (errors.ExecError, agent_errors.AgentError) as exc:
            log.warning("run %s: could not stop it after giving up on it: %s", run.run_id, exc)
            return
        self._finished(target, run.guest, run.guest.run_dir, run.run_id)

    async def _stop_if_started(self, run: _Run) -> None:
        if run.pid == 0 and not await self._adopt(run):
            return  # its start never reached the guest
        await self._helper(run, run.guest.platform.kill(run.run_id, run.pid, run.guest.run_dir),
                           wait=KILL_WAIT, required=True)
        log.warning("run %s: stopped in the guest, which answered after vmexec gave up on it",
                    run.run_id)

    async def _look(self, run: _Run, launch: Launch) -> int | None:
        """Run a helper that only looks at the guest; its exit code (None: killed)."""
        pid = await run.agent.exec(launch.path, launch.args, input_data=launch.input_data,
                                   capture_output=launch.capture_output, timeout=CALL_TIMEOUT)
        loop = asyncio.get_running_loop()
        until, delay = loop.time() + LOOK_TIMEOUT, 0.01
        while loop.time() < until:
            reply = await run.agent.exec_status(pid, timeout=CALL_TIMEOUT)
            if reply.exited:
                return _shell_status(reply)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)
        run.guest.helpers.append(pid)
        raise agent_errors.AgentTimeout(f"a helper in the guest did not finish within "
                                        f"{LOOK_TIMEOUT:g} s", command="guest-exec-status")

    async def _collect(self, run: _Run, files: RunFiles, status: Status | None, *,
                       timed_out: bool, finished: datetime,
                       inline: tuple[bytes, bytes] = (b"", b"")) -> ExecResult:
        limit = run.request.max_output_bytes
        stdout, stderr = await files.read_outputs(limit, status, inline=inline)
        code = status.exit_code if status else None
        return _result(run.run_id, code, timed_out, stdout, stderr, run.started, finished)

    async def _helper(self, run: _Run, launch: Launch, *, wait: float = 0.0,
                      required: bool = False) -> None:
        """Start a helper process (kill, watchdog) in the guest; with ``wait``, wait that long
        for it to finish (a kill returns once everything it kills is gone). Failures are
        logged, except transient ones of a ``required`` helper: those are raised, for the
        caller to start it again once the agent answers (helpers may run twice)."""
        try:
            pid = await run.agent.exec(launch.path, launch.args, input_data=launch.input_data,
                                       capture_output=launch.capture_output,
                                       timeout=CALL_TIMEOUT)
            loop = asyncio.get_running_loop()
            until, delay = loop.time() + wait, 0.01
            while loop.time() < until:
                if (await run.agent.exec_status(pid, timeout=CALL_TIMEOUT)).exited:
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.2)
        except agent_errors.AgentError as exc:
            if required and transient(exc):
                raise
            log.warning("helper for run %s failed: %s", run.run_id, exc)
            return
        run.guest.helpers.append(pid)

    # -- cleanup of collected runs --------------------------------------------------------

    def _finished(self, target: AgentTarget, guest: _Guest, run_dir: str, run_id: str) -> None:
        guest.finished.setdefault(run_dir, []).append(run_id)
        if guest.flush is None:
            loop = asyncio.get_running_loop()
            guest.flush = loop.call_later(CLEANUP_DELAY, self._spawn_cleanup, target, guest)

    def _spawn_cleanup(self, target: AgentTarget, guest: _Guest) -> None:
        guest.flush = None
        task = asyncio.get_running_loop().create_task(self._cleanup(target, guest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cleanup(self, target: AgentTarget, guest: _Guest) -> None:
        if not guest.finished and not guest.helpers:
            return  # nothing to do: do not (re)connect to the agent for nothing
        agent = self.agents.get(target)
        try:
            for run_dir in list(guest.finished):
                run_ids = guest.finished.pop(run_dir, [])
                if run_ids:
                    launch = guest.platform.cleanup(run_dir, run_ids)
                    guest.helpers.append(await agent.exec(
                        launch.path, launch.args, capture_output=False, timeout=CALL_TIMEOUT))
            # The agent keeps a record of every process until its status is read.
            still = []
            for pid in guest.helpers:
                with contextlib.suppress(agent_errors.AgentCommandError):
                    if not (await agent.exec_status(pid, timeout=CALL_TIMEOUT)).exited:
                        still.append(pid)
            guest.helpers = still
        except agent_errors.AgentError as exc:
            log.info("could not clean up finished runs on %s: %s", target, exc)


def _shell_status(reply: ExecStatus) -> int | None:
    if reply.signal is not None:
        return 128 + reply.signal  # as a shell reports a process killed by a signal
    return reply.exit_code


def _setup_error(status: Status, stderr: bytes) -> errors.GuestSetupError:
    known = {r.value for r in errors.SetupReason}
    reason = errors.SetupReason(status.setup_error) if status.setup_error in known \
        else errors.SetupReason.SPAWN_FAILED
    message = stderr.decode("utf-8", errors="replace").strip() or reason.value
    return errors.GuestSetupError(message, reason)


def _result(run_id: str, code: int | None, timed_out: bool, stdout: StreamOutput,
            stderr: StreamOutput, started: datetime, finished: datetime) -> ExecResult:
    # POSIX shells report "killed by signal N" as status 128+N.
    signal = code - 128 if code is not None and 128 < code <= 128 + 64 else None
    return ExecResult(
        run_id=run_id, outcome=Outcome.TIMED_OUT if timed_out else Outcome.EXITED,
        exit_code=code, signal=signal, stdout=stdout, stderr=stderr,
        started_at=started, finished_at=finished,
    )
