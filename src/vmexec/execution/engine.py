"""The exec service: run a command in a guest through its agent and return what happened.

One ``guest-exec`` starts the platform's supervisor; ``guest-exec-status`` is polled with a
short, growing interval (no fixed 1 s sleep), so a trivial command returns in about the agent's
own round-trip time.  When the status reply is lost (the agent frees its record on the first
"exited" reply) or vmexec restarted, :meth:`Executor.recover` reads the run's files instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import ExecStatus, GuestAgent
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import AgentTarget
from vmexec.execution import errors
from vmexec.execution.guestfiles import RunFiles
from vmexec.execution.linux import LinuxPlatform
from vmexec.execution.models import (
    AGENT_OUTPUT_CAP,
    MAX_COMMAND_CHARS,
    MAX_TIMEOUT_SECONDS,
    ExecRequest,
    ExecResult,
    Outcome,
    OutputChunk,
    Platform,
    StreamName,
    StreamOutput,
)
from vmexec.execution.platform import GuestPlatform, Launch
from vmexec.execution.status import Status, split_inline
from vmexec.execution.windows import WindowsPlatform

log = logging.getLogger(__name__)

PLATFORMS: dict[Platform, GuestPlatform] = {
    Platform.LINUX: LinuxPlatform(),
    Platform.WINDOWS: WindowsPlatform(),
}
#: Seconds allowed for one agent round trip before the agent counts as not responding.
CALL_TIMEOUT = 5.0
#: Status polls: first immediately, then growing to this interval (seconds).
POLL_START, POLL_MAX = 0.001, 0.25
#: How long past the command's own timeout vmexec waits for the guest's watchdog.
DEADLINE_MARGIN = 15.0
#: Finished runs whose files are deleted together, by the next run or after this idle time.
CLEANUP_DELAY = 2.0
#: Bytes printed inline beyond this come from the run's files instead (agent cap minus status).
INLINE_LIMIT = AGENT_OUTPUT_CAP - 4096


def new_run_id() -> str:
    return uuid.uuid4().hex


def _now() -> datetime:
    return datetime.now(UTC)


def unavailable(exc: agent_errors.AgentError) -> errors.ExecError:
    """Translate an agent failure into the exec service's error (one place)."""
    reason = errors.UnavailableReason
    table: list[tuple[type[agent_errors.AgentError], errors.UnavailableReason]] = [
        (agent_errors.DomainNotFound, reason.VM_NOT_FOUND),
        (agent_errors.DomainNotRunning, reason.VM_NOT_RUNNING),
        (agent_errors.NoAgentChannel, reason.NO_AGENT_CHANNEL),
        (agent_errors.AgentNotConnected, reason.AGENT_NOT_CONNECTED),
        (agent_errors.HostUnreachable, reason.HOST_UNREACHABLE),
        (agent_errors.AgentTimeout, reason.AGENT_NOT_RESPONDING),
        (agent_errors.AgentProtocolError, reason.AGENT_NOT_RESPONDING),
    ]
    if isinstance(exc, agent_errors.AgentCommandDisabled):
        return errors.ExecDisabled(f"the guest agent does not allow {exc.command}: {exc.message}")
    for kind, why in table:
        if isinstance(exc, kind):
            return errors.GuestUnavailable(str(exc), why)
    return errors.GuestSetupError(f"the guest agent could not start the command: {exc}",
                                  errors.SetupReason.SPAWN_FAILED)


def validate(request: ExecRequest) -> None:
    """Raises: InvalidExecRequest."""
    if not request.command.strip():
        raise errors.InvalidExecRequest("command is empty")
    if len(request.command) > MAX_COMMAND_CHARS:
        raise errors.InvalidExecRequest(f"command is longer than {MAX_COMMAND_CHARS} characters")
    if not 0 < request.timeout <= MAX_TIMEOUT_SECONDS:
        raise errors.InvalidExecRequest(
            f"timeout must be between 0 and {MAX_TIMEOUT_SECONDS} seconds")
    if request.max_output_bytes < 0:
        raise errors.InvalidExecRequest("maxOutputBytes must not be negative")


class _Vm:
    """What the engine keeps per guest: finished runs whose files still wait to be deleted."""

    def __init__(self) -> None:
        self.finished: dict[str, list[str]] = {}  # run dir -> run ids
        self.flush: asyncio.TimerHandle | None = None

    def take(self, run_dir: str | None) -> list[str]:
        return self.finished.pop(run_dir, []) if run_dir else []


class Executor:
    """Runs commands in guests. One instance serves every VM; safe for concurrent use.

    Raises (from every method): :class:`vmexec.execution.errors.ExecError` subclasses.
    """

    def __init__(self, agents: AgentDirectory) -> None:
        self.agents = agents
        self._vms: dict[AgentTarget, _Vm] = {}
        self._run_dirs: dict[AgentTarget, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- public ---------------------------------------------------------------------------

    async def run(self, target: AgentTarget, request: ExecRequest, *,
                  run_id: str | None = None) -> ExecResult:
        """Run ``request`` in the guest behind ``target`` until it exits or times out.

        ``run_id`` (32 hex chars, default: a new one) names the run in the guest, so that
        :meth:`recover` can collect its result after a lost reply or a restart.
        """
        result: ExecResult | None = None
        async for item in self._execute(target, request, run_id, stream=False):
            if isinstance(item, ExecResult):
                result = item
        assert result is not None
        return result

    def stream(self, target: AgentTarget, request: ExecRequest, *,
               run_id: str | None = None) -> AsyncIterator[OutputChunk | ExecResult]:
        """Like :meth:`run`, yielding output chunks as they appear and the result last."""
        return self._execute(target, request, run_id, stream=True)

    async def recover(self, target: AgentTarget, run_id: str, *,
                      platform: Platform = Platform.LINUX,
                      max_output_bytes: int = AGENT_OUTPUT_CAP,
                      timeout: float | None = None) -> ExecResult:
        """Collect the result of run ``run_id`` from its files in the guest.

        Waits while the run is still going, at most ``timeout`` seconds (default: until the
        guest's own watchdog ends it); past that the run is killed.

        Raises:
            ResultLost: the guest has no trace of the run.
        """
        agent = self.agents.get(target)
        files = RunFiles(agent, PLATFORMS[platform], run_id, self._run_dirs.get(target))
        started = _now()
        try:
            run_dir = await files.locate()
            if run_dir is None:
                raise errors.ResultLost(
                    f"run {run_id} left no trace in the guest (never started, or cleaned up)")
            status = await files.wait_status(timeout)
            if status is None:
                await self._kill(agent, PLATFORMS[platform], run_id)
                status = await files.wait_status(10.0)
                if status is None:
                    raise errors.ResultLost(f"run {run_id} did not finish after being killed")
                status = Status(status.exit_code, True, None, status.run_dir, status.code_page)
            if status.setup_error:
                raise _setup_error(status, b"")
            stdout = await files.read_output("out", max_output_bytes, status.code_page)
            stderr = await files.read_output("err", max_output_bytes, status.code_page)
        except agent_errors.AgentError as exc:
            raise unavailable(exc) from None
        self._finished(target, agent, PLATFORMS[platform], run_dir, run_id)
        return _result(run_id, status, stdout, stderr, started, _now())

    async def aclose(self) -> None:
        """Delete the files of collected runs now (best effort) and stop background work."""
        for target, vm in list(self._vms.items()):
            if vm.flush is not None:
                vm.flush.cancel()
            await self._cleanup(target, self.agents.get(target), vm)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- one run --------------------------------------------------------------------------

    async def _execute(self, target: AgentTarget, request: ExecRequest, run_id: str | None,
                       *, stream: bool) -> AsyncIterator[OutputChunk | ExecResult]:
        validate(request)
        run_id = run_id or new_run_id()
        platform = PLATFORMS[request.platform]
        agent = self.agents.get(target)
        vm = self._vms.setdefault(target, _Vm())
        run_dir = self._run_dirs.get(target)
        cap = request.max_output_bytes + 1 if request.max_output_bytes < INLINE_LIMIT else 0
        finished = vm.take(run_dir)
        launch = platform.launch(request, run_id, inline_cap=cap, finished=finished)
        started = _now()
        try:
            pid = await agent.exec(launch.path, launch.args, input_data=launch.input_data,
                                   timeout=CALL_TIMEOUT)
        except agent_errors.AgentError as exc:
            if run_dir:
                vm.finished.setdefault(run_dir, []).extend(finished)
            raise unavailable(exc) from None
        files = RunFiles(agent, platform, run_id, run_dir)
        deadline = asyncio.get_running_loop().time() + request.timeout + DEADLINE_MARGIN
        done: list[ExecStatus] = []
        try:
            if stream:
                async for chunk in self._follow(agent, pid, files, deadline, done):
                    yield chunk
            status_reply = done[0] if done else await self._wait(agent, pid, files, deadline)
        except agent_errors.AgentError as exc:
            raise unavailable(exc) from None
        except _Lost:
            # The exited reply went elsewhere (or vmexec timed out on it): the files have it.
            yield await self.recover(target, run_id, platform=request.platform,
                                     max_output_bytes=request.max_output_bytes,
                                     timeout=max(1.0, deadline - asyncio.get_running_loop().time()))
            return
        except _Overdue:
            await self._kill(agent, platform, run_id)
            yield await self.recover(target, run_id, platform=request.platform,
                                     max_output_bytes=request.max_output_bytes, timeout=10.0)
            return
        finished_at = _now()
        status, out_inline = split_inline(status_reply.stdout)
        if status is None:
            # The supervisor itself died (killed from inside the guest?): use its files.
            yield await self.recover(target, run_id, platform=request.platform,
                                     max_output_bytes=request.max_output_bytes, timeout=5.0)
            return
        if status.setup_error:
            self._finished(target, agent, platform, status.run_dir, run_id)
            raise _setup_error(status, status_reply.stderr)
        if status.run_dir:
            self._run_dirs[target] = status.run_dir
            files.run_dir = status.run_dir
        try:
            stdout = await files.complete("out", out_inline, status_reply.stdout_truncated,
                                          request.max_output_bytes, status.code_page)
            stderr = await files.complete("err", status_reply.stderr,
                                          status_reply.stderr_truncated,
                                          request.max_output_bytes, status.code_page)
        except agent_errors.AgentError as exc:
            raise unavailable(exc) from None
        if stream:
            for name, output in ((StreamName.STDOUT, stdout), (StreamName.STDERR, stderr)):
                tail = output.data[files.streamed[name]:]
                if tail:
                    yield OutputChunk(name, tail)
        self._finished(target, agent, platform, status.run_dir, run_id)
        yield _result(run_id, status, stdout, stderr, started, finished_at)

    async def _poll_once(self, agent: GuestAgent, pid: int,
                         files: RunFiles) -> ExecStatus | None:
        try:
            reply = await agent.exec_status(pid, timeout=CALL_TIMEOUT)
        except agent_errors.AgentTimeout:
            return None
        except agent_errors.AgentCommandError:
            raise _Lost from None
        return reply if reply.exited else None

    async def _wait(self, agent: GuestAgent, pid: int, files: RunFiles,
                    deadline: float) -> ExecStatus:
        loop = asyncio.get_running_loop()
        delay = POLL_START
        while True:
            reply = await self._poll_once(agent, pid, files)
            if reply is not None:
                return reply
            if loop.time() > deadline:
                raise _Overdue
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)

    async def _follow(self, agent: GuestAgent, pid: int, files: RunFiles, deadline: float,
                      done: list[ExecStatus]) -> AsyncIterator[OutputChunk]:
        """Yield new output from the run's files until the agent reports the run exited;
        the exited reply (which the agent gives only once) is put in ``done``."""
        loop = asyncio.get_running_loop()
        delay = 0.02
        while True:
            reply = await self._poll_once(agent, pid, files)
            if reply is not None:
                done.append(reply)
                return
            for chunk in await files.read_new():
                yield chunk
            if loop.time() > deadline:
                raise _Overdue
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    async def _kill(self, agent: GuestAgent, platform: GuestPlatform, run_id: str) -> None:
        with contextlib.suppress(agent_errors.AgentError):
            await self._exec_and_reap(agent, platform.kill(run_id))

    # -- cleanup of collected runs --------------------------------------------------------

    def _finished(self, target: AgentTarget, agent: GuestAgent, platform: GuestPlatform,
                  run_dir: str | None, run_id: str) -> None:
        if not run_dir:
            return
        vm = self._vms.setdefault(target, _Vm())
        vm.finished.setdefault(run_dir, []).append(run_id)
        if vm.flush is None:
            loop = asyncio.get_running_loop()
            vm.flush = loop.call_later(CLEANUP_DELAY, self._spawn_cleanup, target, agent, vm)

    def _spawn_cleanup(self, target: AgentTarget, agent: GuestAgent, vm: _Vm) -> None:
        vm.flush = None
        task = asyncio.get_running_loop().create_task(self._cleanup(target, agent, vm))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cleanup(self, target: AgentTarget, agent: GuestAgent, vm: _Vm) -> None:
        platform = PLATFORMS[Platform.WINDOWS if "\\" in "".join(vm.finished) else
                             Platform.LINUX]
        for run_dir in list(vm.finished):
            run_ids = vm.take(run_dir)
            if run_ids:
                try:
                    await self._exec_and_reap(agent, platform.cleanup(run_dir, run_ids))
                except agent_errors.AgentError as exc:
                    log.info("could not delete finished runs on %s: %s", target, exc)

    async def _exec_and_reap(self, agent: GuestAgent, launch: Launch) -> None:
        # Reap the status too: the agent keeps a record of every exec until it is polled.
        pid = await agent.exec(launch.path, launch.args, input_data=launch.input_data,
                               timeout=CALL_TIMEOUT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30.0
        delay = 0.005
        while loop.time() < deadline:
            if (await agent.exec_status(pid, timeout=CALL_TIMEOUT)).exited:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


class _Lost(Exception):
    """The agent no longer knows the pid: its exited reply was consumed elsewhere."""


class _Overdue(Exception):
    """The run is well past its timeout and the guest's watchdog did not end it."""


def _setup_error(status: Status, stderr: bytes) -> errors.GuestSetupError:
    reason = errors.SetupReason(status.setup_error) if status.setup_error in {
        r.value for r in errors.SetupReason} else errors.SetupReason.SPAWN_FAILED
    message = stderr.decode("utf-8", errors="replace").strip() or reason.value
    return errors.GuestSetupError(message, reason)


def _result(run_id: str, status: Status, stdout: StreamOutput, stderr: StreamOutput,
            started: datetime, finished: datetime) -> ExecResult:
    code = status.exit_code
    # POSIX shells report "killed by signal N" as status 128+N.
    signal = code - 128 if code is not None and 128 < code <= 128 + 64 else None
    return ExecResult(
        run_id=run_id,
        outcome=Outcome.TIMED_OUT if status.timed_out else Outcome.EXITED,
        exit_code=code, signal=signal, stdout=stdout, stderr=stderr,
        started_at=started, finished_at=finished,
    )
