"""Running commands for the API: every command on a VM is an *execution*.

A single ExecuteGuestVmCommand is a job and an execution with the same UUID:
:meth:`ExecutionService.submit` resolves the VM, records the job and the execution in one
transaction, and runs the command in the background; the job's reply (ZStack's wire JSON, so a
poll after a restart answers the same) is stored with the execution record's end and the last
of its output, in one transaction. The output is stored once, as the execution's: the job keeps
its reply with the output (its text and its bytes) left out, null in place, and
:meth:`ExecutionService.job_reply` puts it back, so a poll answers the same bytes as the direct
reply (the job keeps the whole reply when the execution does not keep all of the output, or not
as long as the job). A run's
targets (:mod:`vmexec.services.runs`) use :meth:`ExecutionService.record` and
:meth:`ExecutionService.execute` directly.

While a command runs its output streams into :attr:`ExecutionService.output` (live readers) and
the database (:mod:`vmexec.services.output`). Executions that were running when vmexec stopped
are finished by :meth:`ExecutionService.resume` / :meth:`ExecutionService.recover`, which
collect the result from the guest by its run id (the execution UUID).

Raises (besides the engine's :class:`~vmexec.execution.errors.ExecError` subclasses)
:class:`QgaDisabled` when the guest agent is switched off for the VM (SetVmQga), and
:class:`~vmexec.services.errors.ExecutionNotFound`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Executable, Table, and_, bindparam, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import Execution, ExecutionOutput, Job, utcnow
from vmexec.db.outages import until_written
from vmexec.db.writes import Rows, Write, execute_writes
from vmexec.execution.engine import Executor
from vmexec.execution.errors import ExecError, GuestUnavailable, UnavailableReason
from vmexec.execution.models import (
    AGENT_OUTPUT_CAP,
    ExecRequest,
    ExecResult,
    Outcome,
    Platform,
    Shell,
    StreamName,
    StreamOutput,
)
from vmexec.services import execution_records
from vmexec.services.errors import ExecutionNotFound
from vmexec.services.inventory import Inventory, Viewer, VmRef
from vmexec.services.jobs import ErrorReply, JobReply, JobService
from vmexec.services.output import Chunk, OutputHub, OutputRecorder
from vmexec.services.reply_output import ReplyOutput, lacks_output, with_output, without_output
from vmexec.services.telemetry import ExecutionReport, Metrics
from vmexec.zstack.errors import Code, ErrorCode
from vmexec.zstack.exec import (
    API,
    CommandOutput,
    ExecutionState,
    exact_fields,
    exact_output,
    stream_text,
)
from vmexec.zstack.inventories import VmState
from vmexec.zstack.query import Query

log = logging.getLogger(__name__)

#: Beyond the command's own timeout, how long vmexec waits for the engine before giving up
#: (the engine enforces the timeout itself, and waits out a fault up to 15 s past it for the
#: kill, then collects the result; this only guards against a stuck engine).
GRACE_SECONDS = 45

#: The execution record's ``outcome`` until the command ends, and when it ended in an error
#: (else the engine's :class:`~vmexec.execution.models.Outcome`).
OUTCOME_RUNNING = "running"
OUTCOME_FAILED = "failed"
#: Cancels of executions not started here that are remembered (see ExecutionService.cancel).
CANCELS_KEPT = 4096
#: Executions recorded and not ended whose starter is remembered for their log line; beyond,
#: the oldest are forgotten (their line then names no account).
STARTERS_KEPT = 4096


#: Commits statements (together with others): a run's group commit.
Commit = Callable[..., Awaitable[None]]
#: The INSERT that :meth:`ExecutionService.record_values` gives the parameters of.
RECORD = insert(cast(Table, Execution.__table__))


class QgaDisabled(ExecError):
    """The guest agent is disabled for this VM in vmexec (``SetVmQga enable=false``)."""


@dataclass(frozen=True, slots=True)
class Caller:
    account_uuid: str
    account_name: str
    #: Sees and cancels every account's executions.
    admin: bool = False

    @property
    def viewer(self) -> Viewer:
        """Which VMs the caller sees (names one of the others: as unknown as no VM)."""
        return Viewer(self.account_uuid, self.admin)


@dataclass(frozen=True, slots=True)
class Finished:
    """What an execution ended as."""

    uuid: str
    state: ExecutionState
    exit_code: int | None
    error_code: str | None
    #: The same status and body the job stores (``writes``: the end's, not yet committed
    #: when it comes from the job path; empty once committed).
    reply: JobReply


def api_timeout(request: ExecRequest) -> float:
    """Seconds the API may take for ``request``: its timeout and the grace after it."""
    return request.timeout + GRACE_SECONDS


class ExecutionService:
    """Runs commands as executions (and single ones as jobs) and keeps their records and
    output.

    A single command costs two transactions: one when it starts (job + execution record) and
    one when it ends (job reply + record end + the output not written yet), which is most of
    what the API costs per command. Output of a longer command is written in batches while it
    runs. ``failure`` turns an exception into the reply (the API's one error mapping).
    """

    def __init__(self, executor: Executor, inventory: Inventory, jobs: JobService,
                 failure: ErrorReply, *, db: async_sessionmaker[AsyncSession],
                 output_cap: int = AGENT_OUTPUT_CAP,
                 retention: timedelta = timedelta(days=30),
                 metrics: Metrics | None = None) -> None:
        self._executor = executor
        self._inventory = inventory
        self._jobs = jobs
        self._failure = failure
        self._db = db
        self._retention = retention
        self.output = OutputHub(db, cap=output_cap)
        #: Executions cancelled before they started here (an ordered set).
        self._cancel_before_start: dict[str, None] = {}
        self._metrics = metrics or Metrics()
        #: Who started the executions recorded here and not ended yet, and their run: for
        #: their metrics and log line (bounded: a record whose transaction failed never ends).
        self._started_by: dict[str, tuple[Caller, str | None]] = {}

    # --- single commands (jobs) ----------------------------------------------------------
    async def submit(self, caller: Caller, vm_uuid: str, request: ExecRequest, *,
                     job_uuid: str, webhook: str | None = None) -> asyncio.Task[JobReply]:
        """Start ``request`` on the VM as job and execution ``job_uuid``; the task yields the
        job's reply once it is stored.

        Raises: ``VmNotFound`` (also for a VM the caller does not see), ``DuplicateJob`` (the
        job UUID is taken); nothing has started then.
        """
        vm = await self._inventory.resolve(vm_uuid, visible_to=caller.viewer)

        async def work() -> JobReply:
            return (await self._conduct(vm, request, job_uuid)).reply

        task = await self._jobs.start(
            uuid=job_uuid, api=API, account_uuid=caller.account_uuid, webhook=webhook,
            request={"vmInstanceUuid": vm.uuid, "request": request_to_json(request)},
            work=work, writes=[self.record(caller, vm.uuid, request, uuid=job_uuid)],
            timeout=api_timeout(request))
        # The job's reply and the execution's end are committed when the task is done: only
        # then do live readers turn to the database.
        task.add_done_callback(lambda _: self.output.close(job_uuid))
        return task

    async def resume(self, job_uuid: str, stored: Mapping[str, Any]) -> JobReply:
        """Finish job ``job_uuid`` found running at start: the engine collects the result of
        the command from the guest by its run id. The command cannot outlive its own
        timeout, so that bounds the wait."""
        request = request_from_json(stored["request"])
        vm_uuid = str(stored["vmInstanceUuid"])
        try:
            return (await self._recovered(vm_uuid, request, job_uuid)).reply
        finally:
            # Readers that find the end not yet committed poll the database for it.
            self.output.close(job_uuid)

    # --- executions (a run's targets) ----------------------------------------------------
    def record(self, caller: Caller, vm_uuid: str, request: ExecRequest, *, uuid: str,
               run_uuid: str | None = None) -> Rows:
        """The INSERT of execution ``uuid`` (state Running), for the caller's transaction."""
        return Rows(RECORD, self.record_values(caller, vm_uuid, request, uuid=uuid,
                                               run_uuid=run_uuid))

    def record_values(self, caller: Caller, vm_uuid: str, request: ExecRequest, *, uuid: str,
                      run_uuid: str | None = None) -> dict[str, Any]:
        """:meth:`record`'s row as parameters of :data:`RECORD` (for an ``executemany`` of
        many records: a run's targets)."""
        # Who started it and in which run, for its log line and metrics at the end.
        self._started_by[uuid] = (caller, run_uuid)
        while len(self._started_by) > STARTERS_KEPT:
            del self._started_by[next(iter(self._started_by))]
        now = utcnow()
        return dict(
            uuid=uuid, account_uuid=caller.account_uuid, account_name=caller.account_name,
            vm_uuid=vm_uuid, run_uuid=run_uuid, platform=str(request.platform),
            command=request.command, shell=str(request.shell),
            timeout_seconds=round(request.timeout), outcome=OUTCOME_RUNNING,
            state=ExecutionState.RUNNING, stdout_stored=0, stderr_stored=0,
            requested_at=now, output_expires_at=now + self._retention)

    async def execute(self, vm: VmRef, request: ExecRequest, *, uuid: str,
                      commit: Commit | None = None) -> Finished:
        """Run execution ``uuid``, whose record is committed already (:meth:`record`): stream
        its output to live readers and the database, commit its end, and say how it ended.

        Never raises for command or VM errors: they are a Failed :class:`Finished` with an
        ``error_code``. Raises what the database raises when the end cannot be committed.
        ``commit`` commits the end's writes instead of a transaction of their own (a run's
        group commit).
        """
        try:
            finished = await self._conduct(vm, request, uuid)
            return await self._commit(finished, commit)
        finally:
            self.output.close(uuid)

    async def recover(self, vm_uuid: str, request: ExecRequest, *, uuid: str,
                      commit: Commit | None = None) -> Finished:
        """Finish execution ``uuid`` found running after a restart: its result is collected
        from the guest (never launched again), and its end committed (by ``commit``, as in
        :meth:`execute`)."""
        try:
            return await self._commit(await self._recovered(vm_uuid, request, uuid), commit)
        finally:
            self.output.close(uuid)

    async def cancel(self, caller: Caller, uuid: str) -> None:
        """Stop execution ``uuid`` and its process tree in the guest; it ends Cancelled with
        its output so far. Nothing happens to one that has ended.

        Raises: ExecutionNotFound (unknown, or another account's), the engine's errors when the
        guest cannot be reached.
        """
        record = await self.get(caller, uuid)
        if record.state != ExecutionState.RUNNING:
            return
        if not self.output.is_live(record.uuid):
            # Recorded but not started here (yet): a job's task or a run's target about to
            # start must not start. Bounded: one that runs elsewhere never claims its entry.
            self._cancel_before_start[record.uuid] = None
            while len(self._cancel_before_start) > CANCELS_KEPT:
                del self._cancel_before_start[next(iter(self._cancel_before_start))]
        vm = await self._inventory.resolve(record.vm_uuid)
        await self._executor.cancel(vm.target, record.uuid, platform=Platform(record.platform))

    async def get(self, caller: Caller, uuid: str) -> Execution:
        """Execution ``uuid`` if the caller may see it. Raises ExecutionNotFound."""
        async with self._db() as db:
            record = await db.scalar(select(Execution).where(
                Execution.uuid == uuid.lower(), execution_records.readable(caller.viewer)))
        if record is None:
            raise ExecutionNotFound(uuid)
        return record

    async def query(self, caller: Caller, query: Query) -> dict[str, Any]:
        """QueryGuestVmCommandExecution's reply: the caller's executions (an admin's: all).
        Raises QueryError."""
        async with self._db() as db:
            return await execution_records.query(db, query, viewer=caller.viewer)

    async def inventory(self, caller: Caller, uuid: str, *, output: bool = True,
                        always_base64: bool = False) -> dict[str, Any]:
        """Execution ``uuid``'s inventory, with ``output``: its output so far
        (``stdout``/``stderr``, left out when none was stored, as for records older than
        stored output; with ``stdoutBase64``/``stderrBase64`` as in the command's reply:
        for a stream that is not UTF-8, or both when ``always_base64``). Raises
        ExecutionNotFound."""
        record = await self.get(caller, uuid)
        inventory = execution_records.inventory(record)
        if not output:
            return inventory
        chunks = self.output.snapshot(record.uuid)
        if chunks is None:
            chunks = await self.output.stored(record.uuid)
        if chunks or not (record.stdout_bytes or record.stderr_bytes):
            stdout, stderr = stored_streams(chunks)
            inventory["stdout"] = stdout.text
            inventory["stderr"] = stderr.text
            inventory.update(exact_output(stdout.data, stderr.data, always=always_base64))
        return inventory

    async def result(self, uuid: str) -> JobReply | None:
        """The reply execution ``uuid`` ended with, or None while it runs: its job's reply
        while the job is kept (a single command), else the reply kept with the record, its
        output text from the stored output (within ``output_cap``)."""
        async with self._db() as db:
            record = await db.get(Execution, uuid)
            job = await db.get(Job, uuid)
        if record is None:
            raise ExecutionNotFound(uuid)
        if record.state == ExecutionState.RUNNING:
            return None
        if job is not None and job.status is not None and job.result is not None:
            return await self.job_reply(uuid, JobReply(job.status, job.result))
        stdout, stderr = stored_streams(await self.output.stored(uuid))
        if record.reply_status is None or record.reply is None:
            return _legacy_reply(record, stdout.text, stderr.text)
        return JobReply(record.reply_status, with_output(record.reply, stdout, stderr))

    async def job_reply(self, uuid: str, kept: JobReply) -> JobReply:
        """The whole reply of job ``uuid`` from what the job kept of it: the output (text and
        bytes) comes from the execution's stored output when the job left it out (a
        ``Reader`` of :class:`~vmexec.services.jobs.JobService`)."""
        if not lacks_output(kept.body):
            return kept
        stdout, stderr = stored_streams(await self.output.stored(uuid))
        return JobReply(kept.status, with_output(kept.body, stdout, stderr))

    async def wait(self, uuid: str, timeout: float) -> None:
        """Wait at most ``timeout`` seconds for execution ``uuid`` to end (here or in the
        database)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self.output.ended(uuid)
        while loop.time() < deadline:
            async with self._db() as db:
                state = await db.scalar(select(Execution.state).where(Execution.uuid == uuid))
            if state != ExecutionState.RUNNING:
                return
            await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))

    async def purge_expired(self) -> int:
        """Delete executions (and their output) past their retention; returns how many.
        Records from before output retention existed go ``retention`` after their request."""
        now = utcnow()
        expired = select(Execution.uuid).where(
            Execution.state != ExecutionState.RUNNING,
            or_(Execution.output_expires_at <= now,
                and_(Execution.output_expires_at.is_(None),
                     Execution.requested_at <= now - self._retention)))
        async with self._db() as db:
            # The output explicitly, not by the cascade alone: a database without foreign key
            # enforcement would keep it.
            await db.execute(delete(ExecutionOutput).where(
                ExecutionOutput.execution_uuid.in_(expired)))
            result = await db.execute(delete(Execution).where(Execution.uuid.in_(expired)))
            await db.commit()
        await self.output.purge_watches()
        return int(getattr(result, "rowcount", 0) or 0)

    # --- one execution -------------------------------------------------------------------
    async def _conduct(self, vm: VmRef, request: ExecRequest, uuid: str) -> Finished:
        """Run the command, recording its output; the Finished's reply carries the end's
        writes (record update and output rows), not committed."""
        recorder = self.output.open(uuid)

        async def run() -> ExecResult:
            if uuid in self._cancel_before_start:
                del self._cancel_before_start[uuid]
                return _never_started(uuid)
            _check_usable(vm)
            result: ExecResult | None = None
            async for item in self._executor.stream(
                    vm.target, request, run_id=uuid,
                    watched=functools.partial(self.output.watched, uuid)):
                if isinstance(item, ExecResult):
                    result = item
                else:
                    recorder.add(item)
            assert result is not None, "the engine's stream ends with the result"
            return result

        return await self._finish(uuid, vm.uuid, request, run(), recorder)

    async def _recovered(self, vm_uuid: str, request: ExecRequest, uuid: str) -> Finished:
        recorder = await self.output.reopen(uuid)

        async def run() -> ExecResult:
            vm = await self._inventory.resolve(vm_uuid)
            return await self._executor.recover(
                vm.target, uuid, platform=request.platform,
                max_output_bytes=request.max_output_bytes, timeout=request.timeout)

        return await self._finish(uuid, vm_uuid, request, run(), recorder)

    async def _commit(self, finished: Finished, commit: Commit | None = None) -> Finished:
        if commit is not None:
            await commit(*finished.reply.writes)
        else:
            await until_written(functools.partial(self._write, finished.reply.writes),
                                what="storing an execution's end")
        return replace(finished, reply=JobReply(finished.reply.status, finished.reply.whole()))

    async def _write(self, writes: Sequence[Write]) -> None:
        async with self._db() as db:
            await execute_writes(db, writes)
            await db.commit()

    async def _finish(self, uuid: str, vm_uuid: str, request: ExecRequest,
                      run: Awaitable[ExecResult], recorder: OutputRecorder) -> Finished:
        """:meth:`_outcome`, reported to the metrics and the log once it ended."""
        started = time.monotonic()
        caller, run_uuid = self._started_by.pop(uuid, (None, None))
        self._metrics.execution_started()
        try:
            finished, result = await self._outcome(uuid, vm_uuid, request, run, recorder)
        except BaseException:
            self._metrics.execution_abandoned()  # shutdown: it is resumed at the next start
            raise
        ran = finished.state in (ExecutionState.TIMED_OUT, ExecutionState.CANCELLED)
        self._metrics.execution_finished(ExecutionReport.of(
            result, uuid=uuid, vm_uuid=vm_uuid, state=finished.state.value,
            # A timeout's or a cancel's code says what the state says already.
            error_code=None if ran else finished.error_code,
            total_seconds=time.monotonic() - started,
            account_uuid=caller.account_uuid if caller else None,
            account_name=caller.account_name if caller else None, run_uuid=run_uuid))
        return finished

    async def _outcome(self, uuid: str, vm_uuid: str, request: ExecRequest,
                       run: Awaitable[ExecResult], recorder: OutputRecorder
                       ) -> tuple[Finished, ExecResult | None]:
        """Await ``run`` (the engine call) and turn its outcome into the reply, with the
        execution record's end and the output rows not yet written to be stored with it; and
        the engine's result, if it had one."""
        try:
            async with asyncio.timeout(api_timeout(request)):
                result = await run
        except asyncio.CancelledError:
            await recorder.discard()
            raise
        except TimeoutError:
            return await self._failed(uuid, recorder, TimeoutError(
                f"no result from the guest agent {api_timeout(request):g}s after start")), None
        except Exception as exc:
            return await self._failed(uuid, recorder, exc), None
        recorder.complete(StreamName.STDOUT, result.stdout)
        recorder.complete(StreamName.STDERR, result.stderr)
        # The reply is made without its output (text and bytes), which stays the engine's
        # bytes until it is written (see vmexec.services.reply_output).
        output = command_output(result)
        state = _state_of(result)
        if state is ExecutionState.TIMED_OUT:
            error = ErrorCode.of(
                Code.VM_EXEC_TIMED_OUT,
                f"the command did not finish within {request.timeout:g}s and was stopped",
                opaque=output.to_json())
            status, body = 503, {"error": error.to_json()}
        elif state is ExecutionState.CANCELLED:
            error = ErrorCode.of(Code.VM_EXEC_CANCELLED, "the command was cancelled",
                                 opaque=output.to_json())
            status, body = 503, {"error": error.to_json()}
        else:
            try:
                inventory = await self._inventory.inventory(vm_uuid)
            except Exception:  # the VM vanished since: the result still stands
                inventory = {"uuid": vm_uuid}
            status, body = 200, output.reply(inventory)
        error_code = body.get("error", {}).get("code")
        kept = body = without_output(body, exact=exact_fields(
            result.stdout.pieces, result.stderr.pieces, always=request.output_base64))
        end = _update(
            uuid, state=state, outcome=str(result.outcome), exit_code=result.exit_code,
            signal=result.signal, stdout_bytes=result.stdout.total_bytes,
            stderr_bytes=result.stderr.total_bytes,
            stdout_truncated=result.stdout.truncated or recorder.dropped[StreamName.STDOUT],
            stderr_truncated=result.stderr.truncated or recorder.dropped[StreamName.STDERR],
            stdout_stored=recorder.stored[StreamName.STDOUT],
            stderr_stored=recorder.stored[StreamName.STDERR],
            started_at=result.started_at, finished_at=result.finished_at,
            duration_ms=result.duration_ms, error_code=error_code,
            reply_status=status, reply=kept)
        writes = (*await recorder.end_writes(), end)
        # The output is stored once: the job keeps the reply without it when the execution's
        # stored output is all of it, as the reply has it (and outlives the job).
        whole = self._stores_whole(result, recorder)
        return Finished(uuid, state, result.exit_code, error_code,
                        JobReply(status, body, writes, stored=kept if whole else None,
                                 output=ReplyOutput(result.stdout, result.stderr))), result

    def _stores_whole(self, result: ExecResult, recorder: OutputRecorder) -> bool:
        """Whether the execution's stored output, read back as text, is the reply's output
        text (all of it kept, UTF-8 as :func:`stored_streams` reads it), and is kept as long as
        the job."""
        return self._retention >= self._jobs.retention and all(
            output.encoding == "utf-8" and not recorder.dropped[stream]
            and recorder.stored[stream] == output.size
            for stream, output in ((StreamName.STDOUT, result.stdout),
                                   (StreamName.STDERR, result.stderr)))

    async def _failed(self, uuid: str, recorder: OutputRecorder,
                      exc: BaseException) -> Finished:
        reply = self._failure(exc)
        error = reply.body.get("error", {})
        code = error.get("code")
        end = _update(uuid, state=ExecutionState.FAILED, outcome=OUTCOME_FAILED,
                      error_code=code, error_details=error.get("details"),
                      stdout_bytes=recorder.seen[StreamName.STDOUT],
                      stderr_bytes=recorder.seen[StreamName.STDERR],
                      stdout_stored=recorder.stored[StreamName.STDOUT],
                      stderr_stored=recorder.stored[StreamName.STDERR],
                      finished_at=utcnow(), reply_status=reply.status,
                      reply=without_output(reply.body))
        writes = (*await recorder.end_writes(), end)
        return Finished(uuid, ExecutionState.FAILED, None, code,
                        JobReply(reply.status, reply.body, writes))


def stored_streams(chunks: Sequence[Chunk]) -> tuple[StreamOutput, StreamOutput]:
    """stdout and stderr of stored output ``chunks`` (read as UTF-8)."""

    def stream(name: StreamName) -> StreamOutput:
        return StreamOutput(b"".join(c.data for c in chunks if c.stream is name))

    return stream(StreamName.STDOUT), stream(StreamName.STDERR)


def _never_started(uuid: str) -> ExecResult:
    """The result of an execution cancelled before it started (as the engine reports one
    cancelled before its guest-exec went out)."""
    now = utcnow()
    return ExecResult(run_id=uuid, outcome=Outcome.CANCELLED, exit_code=None, signal=None,
                      stdout=StreamOutput(), stderr=StreamOutput(), started_at=now,
                      finished_at=now)


def _legacy_reply(record: Execution, stdout: str, stderr: str) -> JobReply:
    """The reply of a record from before replies were kept with it (and whose job is gone):
    what the record says."""
    if record.error_code is not None:
        error = ErrorCode(record.error_code, "", record.error_details)
        return JobReply(503, {"error": error.to_json()})
    return JobReply(200, {"success": True, "stream": stream_text(stdout, stderr),
                          "exitCode": record.exit_code, "stdout": stdout, "stderr": stderr})


def _check_usable(vm: VmRef) -> None:
    if not vm.qga_enabled:
        raise QgaDisabled(f"the guest agent is disabled for VM[uuid:{vm.uuid}] "
                          "(SetVmQga enable=false); enable it to run commands")
    # Only a VM known to be down is refused here. Paused, or of unknown state (its host
    # not answering for now), it may run the command before its deadline: the engine
    # waits for it and tells a VM that is really gone from one that comes back.
    if vm.state in (VmState.STOPPED, VmState.CRASHED):
        raise GuestUnavailable(f"VM[uuid:{vm.uuid}] is {vm.state}, not Running",
                               UnavailableReason.VM_NOT_RUNNING)


def _state_of(result: ExecResult) -> ExecutionState:
    if result.timed_out:
        return ExecutionState.TIMED_OUT
    if result.cancelled:
        return ExecutionState.CANCELLED
    if result.exit_code == 0 and result.signal is None:
        return ExecutionState.SUCCEEDED
    return ExecutionState.FAILED


def command_output(result: ExecResult) -> CommandOutput:
    """The result's output fields for a reply made without its output: stdout and stderr
    empty, no bytes fields (:func:`~vmexec.services.reply_output.without_output` puts the
    output's keys in place; see :mod:`vmexec.services.reply_output`)."""
    return CommandOutput(
        stdout="", stderr="", exit_code=result.exit_code,
        signal=result.signal, stdout_truncated=result.stdout.truncated,
        stderr_truncated=result.stderr.truncated, timed_out=result.timed_out,
        duration_ms=result.duration_ms)


def request_to_json(request: ExecRequest) -> dict[str, Any]:
    """``request`` as JSON, kept with the job so that it can be resumed after a restart."""
    return {
        "command": request.command, "platform": str(request.platform),
        "timeout": request.timeout,
        "stdin": base64.b64encode(request.stdin).decode() if request.stdin is not None else None,
        "env": dict(request.env), "workingDirectory": request.working_directory,
        "runAs": request.run_as, "shell": str(request.shell),
        "maxOutputBytes": request.max_output_bytes,
        **({"outputBase64": True} if request.output_base64 else {}),
    }


def request_from_json(data: Mapping[str, Any]) -> ExecRequest:
    """The inverse of :func:`request_to_json`."""
    stdin = data.get("stdin")
    return ExecRequest(
        command=data["command"], platform=Platform(data["platform"]),
        timeout=float(data["timeout"]),
        stdin=base64.b64decode(stdin) if stdin is not None else None,
        env=dict(data.get("env") or {}), working_directory=data.get("workingDirectory"),
        run_as=data.get("runAs"), shell=Shell(data.get("shell") or Shell.DEFAULT),
        max_output_bytes=int(data.get("maxOutputBytes") or AGENT_OUTPUT_CAP),
        output_base64=bool(data.get("outputBase64")),
    )


_EXECUTIONS = cast(Table, Execution.__table__)
#: UPDATE statements by the columns they set, each built once.
_UPDATES: dict[tuple[str, ...], Executable] = {}


def _update(uuid: str, **values: object) -> Rows:
    """The UPDATE of execution ``uuid``, as a row of a statement built once per set of columns:
    the ends of a run's many executions go as one ``executemany`` (building an ORM UPDATE per
    execution cost more than the rest of its end)."""
    columns = tuple(sorted(values))
    statement = _UPDATES.get(columns)
    if statement is None:
        statement = _UPDATES[columns] = (
            update(_EXECUTIONS).where(_EXECUTIONS.c.uuid == bindparam("b_uuid"))
            .values({c: bindparam(f"b_{c}", type_=_EXECUTIONS.c[c].type) for c in columns}))
    return Rows(statement, {"b_uuid": uuid, **{f"b_{c}": v for c, v in values.items()}})
