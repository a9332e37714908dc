"""Test doubles for the API tests that need no guest: subclasses, not patches.

- :class:`ScriptedExecutor`: an :class:`Executor` that interprets a tiny script language
  instead of talking to a guest agent (one statement per line)::

      echo TEXT            TEXT + newline on stdout     echo TEXT >&2   ... on stderr
      sleep SECONDS        wait (the request's timeout applies: past it, a timed-out result)
      exit N               exit code N (default 0)      kill N          ended by signal N
      raise KIND           raise an ExecError: invalid, unavailable, stopped, disabled,
                           setup, lost
      cat                  copy stdin to stdout

  Other lines are ignored (fuzzed commands must not break the double).

  Runs are remembered in a shared :class:`FakeGuest`, so an executor of a restarted server
  can :meth:`~Executor.recover` a run that the previous one started. Its files are a dict
  (:class:`MemoryFiles`, for the routes' permissions; the copy itself is tested on VMs).

(The inventory is the real one over in-memory hosts: see tests/fakes/hosts.py.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import AgentTarget
from vmexec.execution import errors
from vmexec.execution.engine import Executor
from vmexec.execution.files import Download, GuestFiles, check_path
from vmexec.execution.models import (
    ExecRequest,
    ExecResult,
    Outcome,
    OutputChunk,
    Platform,
    StreamName,
    StreamOutput,
)


@dataclass
class FakeGuest:
    """What "the guest" remembers across executors: run id -> request, and finished runs."""

    requests: dict[str, ExecRequest] = field(default_factory=dict)
    started: asyncio.Event | None = None
    runs: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=lambda: {"/etc/hostname": b"fake\n"})

    def wait_started(self, run_id: str, timeout: float = 10.0) -> None:
        """Block (a test's thread, not the server's loop) until run ``run_id`` started in
        "the guest". Raises AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while run_id not in self.runs:
            assert time.monotonic() < deadline, f"run {run_id} did not start"
            time.sleep(0.02)


class MemoryFiles(GuestFiles):
    """The guest's files as :attr:`FakeGuest.files`."""

    def __init__(self, agents: AgentDirectory, target: AgentTarget, guest: FakeGuest) -> None:
        super().__init__(agents.get(target))
        self.guest = guest

    async def upload(self, path: str, body: AsyncIterator[bytes], *, mode: str | None = None,
                     owner: str | None = None) -> int:
        check_path(path)
        data = b"".join([chunk async for chunk in body])
        self.guest.files[path] = data
        return len(data)

    async def download(self, path: str) -> Download:
        check_path(path)
        if path not in self.guest.files:
            raise errors.GuestFileError(f"no {path}", errors.FileProblem.NOT_FOUND)
        data = self.guest.files[path]

        async def chunks() -> AsyncIterator[bytes]:
            yield data
        return Download(len(data), chunks())


_RAISE_KINDS = ("invalid", "unavailable", "stopped", "disabled", "setup", "lost", "nospace")


def _raise(kind: str) -> None:
    reasons = errors.UnavailableReason
    match kind:
        case "invalid":
            raise errors.InvalidExecRequest("the request is not valid for this guest")
        case "unavailable":
            raise errors.GuestUnavailable("the agent does not answer",
                                          reasons.AGENT_NOT_RESPONDING)
        case "stopped":
            raise errors.GuestUnavailable("domain is not running", reasons.VM_NOT_RUNNING)
        case "disabled":
            raise errors.ExecDisabled("guest-exec is disabled")
        case "setup":
            raise errors.GuestSetupError("user nobody2 does not exist",
                                         errors.SetupReason.USER_MISSING)
        case "lost":
            raise errors.ResultLost("the guest forgot the run")
        case "nospace":
            raise errors.OutputNotStored("the guest could not store the command's output",
                                         ran=True, exit_code=1)
    raise AssertionError(f"unknown raise kind {kind}")


class ScriptedExecutor(Executor):
    """See the module docstring."""

    def __init__(self, agents: AgentDirectory, guest: FakeGuest | None = None) -> None:
        super().__init__(agents)
        self.guest = guest or FakeGuest()
        #: Runs under way here, set when cancelled.
        self._cancels: dict[str, asyncio.Event] = {}

    async def _interpret(self, request: ExecRequest, run_id: str, *, sleep: bool,
                         emit: Callable[[OutputChunk], None] | None = None) -> ExecResult:
        started = datetime.now(UTC)
        out, err = bytearray(), bytearray()
        exit_code, signal, slept = 0, None, 0.0
        for line in request.command.splitlines():
            word, _, rest = line.strip().partition(" ")
            if word == "echo":
                if rest.endswith(">&2"):
                    text, stream, name = rest[:-3].strip().encode() + b"\n", err, StreamName.STDERR
                else:
                    text, stream, name = rest.encode() + b"\n", out, StreamName.STDOUT
                stream += text
                if emit is not None:
                    emit(OutputChunk(name, text))
            elif word == "sleep":
                try:
                    seconds = float(rest)
                except ValueError:
                    continue  # not a statement of this language: ignored, like any other
                if slept + seconds > request.timeout:
                    if sleep:
                        await asyncio.sleep(max(request.timeout - slept, 0))
                    return self._result(run_id, Outcome.TIMED_OUT, None, 9, out, err, started,
                                        request)
                if sleep and await self._cancelled_during(run_id, seconds):
                    return self._result(run_id, Outcome.CANCELLED, None, 9, out, err, started,
                                        request)
                slept += seconds
            elif word == "exit" and (rest or "0").isdigit():
                exit_code = int(rest or 0)
                break
            elif word == "kill" and rest.isdigit():
                exit_code, signal = None, int(rest)
                break
            elif word == "raise" and rest.strip() in _RAISE_KINDS:
                _raise(rest.strip())
            elif word == "cat" and request.stdin is not None:
                out += request.stdin
        return self._result(run_id, Outcome.EXITED, exit_code, signal, out, err, started,
                            request)

    @staticmethod
    def _result(run_id: str, outcome: Outcome, exit_code: int | None, signal: int | None,
                out: bytes, err: bytes, started: datetime, request: ExecRequest) -> ExecResult:
        cap = request.max_output_bytes

        def stream(data: bytes) -> StreamOutput:
            return StreamOutput(data=bytes(data[:cap]), total_bytes=len(data),
                                truncated=len(data) > cap)

        return ExecResult(run_id=run_id, outcome=outcome, exit_code=exit_code, signal=signal,
                          stdout=stream(out), stderr=stream(err), started_at=started,
                          finished_at=datetime.now(UTC))

    async def run(self, target: AgentTarget, request: ExecRequest, *,
                  run_id: str | None = None) -> ExecResult:
        assert run_id is not None, "the API always names its runs"
        self.guest.requests[run_id] = request
        self.guest.runs.append(run_id)
        if self.guest.started is not None:
            self.guest.started.set()
        return await self._interpret(request, run_id, sleep=True)

    async def stream(self, target: AgentTarget, request: ExecRequest, *,
                     run_id: str | None = None, watched: Callable[[], bool] | None = None
                     ) -> AsyncIterator[OutputChunk | ExecResult]:
        """Chunks as the script echoes them (live, between its sleeps, ``watched`` or not:
        the pace of reading a guest's files is the real engine's), then the result."""
        assert run_id is not None, "the API always names its runs"
        self.guest.requests[run_id] = request
        self.guest.runs.append(run_id)
        if self.guest.started is not None:
            self.guest.started.set()
        self._cancels[run_id] = asyncio.Event()
        queue: asyncio.Queue[OutputChunk | ExecResult | BaseException] = asyncio.Queue()

        async def interpret() -> None:
            try:
                queue.put_nowait(await self._interpret(request, run_id, sleep=True,
                                                       emit=queue.put_nowait))
            except Exception as exc:
                queue.put_nowait(exc)

        task = asyncio.ensure_future(interpret())
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, ExecResult):
                    return
        finally:
            task.cancel()
            self._cancels.pop(run_id, None)

    async def _cancelled_during(self, run_id: str, seconds: float) -> bool:
        cancel = self._cancels.get(run_id)
        if cancel is None:  # not streamed (run, recover): not cancellable here
            await asyncio.sleep(seconds)
            return False
        try:
            await asyncio.wait_for(cancel.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def cancel(self, target: AgentTarget, run_id: str, *,
                     platform: Platform = Platform.LINUX) -> bool:
        """Cancel a run that sleeps here (as the engine: False for one that ended)."""
        cancel = self._cancels.get(run_id)
        if cancel is None or cancel.is_set():
            return False
        cancel.set()
        return True

    async def recover(self, target: AgentTarget, run_id: str, *,
                      platform: Platform = Platform.LINUX, max_output_bytes: int | None = None,
                      timeout: float = 60.0) -> ExecResult:
        request = self.guest.requests.get(run_id)
        if request is None:
            raise errors.ResultLost(f"run {run_id} is unknown to the guest")
        return await self._interpret(request, run_id, sleep=False)

    def files(self, target: AgentTarget, platform: Platform = Platform.LINUX) -> GuestFiles:
        return MemoryFiles(self.agents, target, self.guest)

    async def aclose(self) -> None:
        pass
