"""Running commands for the API (ExecuteGuestVmCommand): every call is an async job and an
execution record.

:meth:`ExecutionService.submit` resolves the VM, records the job and the execution in one
transaction, and runs the command in the background; the job's reply (ZStack's wire JSON, so a
poll after a restart answers the same) is stored with the execution record's end. Jobs that
were running when vmexec stopped are finished by :meth:`ExecutionService.resume`, which
collects the result from the guest by its run id (the job UUID).

Raises (besides the engine's :class:`~vmexec.execution.errors.ExecError` subclasses)
:class:`QgaDisabled` when the guest agent is switched off for the VM (SetVmQga).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable, insert, update

from vmexec.db.models import Execution, utcnow
from vmexec.execution.engine import Executor
from vmexec.execution.errors import ExecError, GuestUnavailable, UnavailableReason
from vmexec.execution.models import AGENT_OUTPUT_CAP, ExecRequest, ExecResult, Platform, Shell
from vmexec.services.inventory import Inventory, VmRef
from vmexec.services.jobs import ErrorReply, JobReply, JobService
from vmexec.services.telemetry import ExecutionReport, Metrics
from vmexec.zstack.errors import Code, ErrorCode
from vmexec.zstack.exec import API, CommandOutput
from vmexec.zstack.inventories import VmState

#: Beyond the command's own timeout, how long vmexec waits for the engine before giving up
#: (the engine enforces the timeout itself, and waits out a fault up to 15 s past it for the
#: kill, then collects the result; this only guards against a stuck engine).
GRACE_SECONDS = 45

#: The execution record's ``outcome`` until the command ends, and when it ended in an error
#: (else the engine's :class:`~vmexec.execution.models.Outcome`).
OUTCOME_RUNNING = "running"
OUTCOME_FAILED = "failed"


class QgaDisabled(ExecError):
    """The guest agent is disabled for this VM in vmexec (``SetVmQga enable=false``)."""


@dataclass(frozen=True, slots=True)
class Caller:
    account_uuid: str
    account_name: str


def api_timeout(request: ExecRequest) -> float:
    """Seconds the API may take for ``request``: its timeout and the grace after it."""
    return request.timeout + GRACE_SECONDS


class ExecutionService:
    """Runs commands as jobs and keeps their execution records.

    The records are written as statements committed together with the job's own writes: one
    transaction when a command starts and one when it ends, which is most of what the API
    costs per command. ``failure`` turns an exception into the job's error reply (the API's
    one error mapping).
    """

    def __init__(self, executor: Executor, inventory: Inventory, jobs: JobService,
                 failure: ErrorReply, metrics: Metrics | None = None) -> None:
        self._executor = executor
        self._inventory = inventory
        self._jobs = jobs
        self._failure = failure
        self._metrics = metrics or Metrics()

    async def submit(self, caller: Caller, vm_uuid: str, request: ExecRequest, *,
                     job_uuid: str, webhook: str | None = None) -> asyncio.Task[JobReply]:
        """Start ``request`` on the VM as job ``job_uuid``; the task yields the job's reply
        once it is stored.

        Raises: ``VmNotFound``, ``DuplicateJob`` (the job UUID is taken); nothing has started
        then.
        """
        vm = await self._inventory.resolve(vm_uuid)
        return await self._jobs.start(
            uuid=job_uuid, api=API, account_uuid=caller.account_uuid, webhook=webhook,
            request={"vmInstanceUuid": vm.uuid, "request": request_to_json(request)},
            work=lambda: self._finish(job_uuid, vm.uuid, request,
                                      self._run(job_uuid, vm, request), caller),
            writes=[_recorded(job_uuid, caller, vm.uuid, request)])

    async def resume(self, job_uuid: str, stored: Mapping[str, Any]) -> JobReply:
        """Finish job ``job_uuid`` found running at start: the engine collects the result of
        the command from the guest by its run id. The command cannot outlive its own
        timeout, so that bounds the wait."""
        request = request_from_json(stored["request"])
        vm_uuid = str(stored["vmInstanceUuid"])
        try:
            vm = await self._inventory.resolve(vm_uuid)
        except Exception as exc:
            return self._failed(job_uuid, exc)
        return await self._finish(job_uuid, vm_uuid, request, self._executor.recover(
            vm.target, job_uuid, platform=request.platform,
            max_output_bytes=request.max_output_bytes, timeout=request.timeout))

    async def _run(self, uuid: str, vm: VmRef, request: ExecRequest) -> ExecResult:
        if not vm.qga_enabled:
            raise QgaDisabled(f"the guest agent is disabled for VM[uuid:{vm.uuid}] "
                              "(SetVmQga enable=false); enable it to run commands")
        # Only a VM known to be down is refused here. Paused, or of unknown state (its host
        # not answering for now), it may run the command before its deadline: the engine
        # waits for it and tells a VM that is really gone from one that comes back.
        if vm.state in (VmState.STOPPED, VmState.CRASHED):
            raise GuestUnavailable(f"VM[uuid:{vm.uuid}] is {vm.state}, not Running",
                                   UnavailableReason.VM_NOT_RUNNING)
        return await self._executor.run(vm.target, request, run_id=uuid)

    async def _finish(self, uuid: str, vm_uuid: str, request: ExecRequest,
                      run: Awaitable[ExecResult], caller: Caller | None = None) -> JobReply:
        """Await ``run`` (the engine call) and turn its outcome into the job's reply, with the
        execution record's end to be stored with it; report it to the metrics and the log."""
        started = time.monotonic()
        self._metrics.execution_started()
        reply, result = await self._outcome(uuid, vm_uuid, request, run)
        error = reply.body.get("error") if reply.status != 200 else None
        error_code = error.get("code") if isinstance(error, dict) else None
        self._metrics.execution_finished(ExecutionReport.of(
            result, uuid=uuid, vm_uuid=vm_uuid, state=execution_state(result, error_code),
            # A timeout's code says what the state says already.
            error_code=None if result and result.timed_out else error_code,
            total_seconds=time.monotonic() - started,
            account_uuid=caller.account_uuid if caller else None,
            account_name=caller.account_name if caller else None))
        return reply

    async def _outcome(self, uuid: str, vm_uuid: str, request: ExecRequest,
                       run: Awaitable[ExecResult]) -> tuple[JobReply, ExecResult | None]:
        """The job's reply for ``run``'s outcome, and the engine's result if it had one."""
        try:
            async with asyncio.timeout(api_timeout(request)):
                result = await run
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            return self._failed(uuid, TimeoutError(
                f"no result from the guest agent {api_timeout(request):g}s after start")), None
        except Exception as exc:
            return self._failed(uuid, exc), None
        record = (_finished(uuid, result),)
        output = command_output(result)
        if result.timed_out:
            error = ErrorCode.of(
                Code.VM_EXEC_TIMED_OUT,
                f"the command did not finish within {request.timeout:g}s and was stopped",
                opaque=output.to_json())
            return JobReply(503, {"error": error.to_json()}, record), result
        try:
            inventory = await self._inventory.inventory(vm_uuid)
        except Exception:  # the VM vanished since: the result still stands
            inventory = {"uuid": vm_uuid}
        return JobReply(200, output.reply(inventory), record), result

    def _failed(self, uuid: str, exc: BaseException) -> JobReply:
        reply = self._failure(exc)
        error = reply.body.get("error", {})
        return JobReply(reply.status, reply.body,
                        (_update(uuid, outcome=OUTCOME_FAILED, error_code=error.get("code"),
                                 error_details=error.get("details"), finished_at=utcnow()),))


def execution_state(result: ExecResult | None, error_code: str | None) -> str:
    """The wire state of an ended execution: ``Succeeded`` (exited 0), ``Failed`` (exited
    non-zero, killed, or a vmexec error), ``TimedOut``."""
    if result is None:
        return "Failed"
    if result.timed_out:
        return "TimedOut"
    return "Succeeded" if result.exit_code == 0 and error_code is None else "Failed"


def command_output(result: ExecResult) -> CommandOutput:
    return CommandOutput(
        stdout=result.stdout.text, stderr=result.stderr.text, exit_code=result.exit_code,
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
    )


def _recorded(uuid: str, caller: Caller, vm_uuid: str, request: ExecRequest) -> Executable:
    return insert(Execution).values(
        uuid=uuid, account_uuid=caller.account_uuid, account_name=caller.account_name,
        vm_uuid=vm_uuid, platform=str(request.platform), command=request.command,
        timeout_seconds=round(request.timeout), outcome=OUTCOME_RUNNING, requested_at=utcnow())


def _finished(uuid: str, result: ExecResult) -> Executable:
    return _update(
        uuid, outcome=str(result.outcome), exit_code=result.exit_code,
        signal=result.signal, stdout_bytes=result.stdout.total_bytes,
        stderr_bytes=result.stderr.total_bytes,
        stdout_truncated=result.stdout.truncated, stderr_truncated=result.stderr.truncated,
        started_at=result.started_at, finished_at=result.finished_at)


def _update(uuid: str, **values: object) -> Executable:
    return update(Execution).where(Execution.uuid == uuid).values(**values)
