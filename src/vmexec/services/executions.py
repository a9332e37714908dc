"""Running commands for the API: checks that the VM may run one, calls the engine, and keeps
the execution record (who, which VM, what, when, how it ended, how much output).

Raises (besides the engine's :class:`~vmexec.execution.errors.ExecError` subclasses)
:class:`QgaDisabled` when the guest agent is switched off for the VM (SetVmQga).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Executable, insert, update

from vmexec.agent.targets import AgentTarget
from vmexec.db.models import Execution, utcnow
from vmexec.execution.engine import Executor
from vmexec.execution.errors import ExecError, GuestUnavailable, UnavailableReason
from vmexec.execution.models import ExecRequest, ExecResult

RUNNING = "running"
FAILED = "failed"


class QgaDisabled(ExecError):
    """The guest agent is disabled for this VM in vmexec (``SetVmQga enable=false``)."""


class VmRef(Protocol):
    """What the inventory tells about a VM (``vmexec.services.inventory.VmRef``)."""

    @property
    def uuid(self) -> str: ...
    @property
    def target(self) -> AgentTarget: ...
    @property
    def qga_enabled(self) -> bool: ...
    @property
    def state(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Caller:
    account_uuid: str
    account_name: str


class ExecutionService:
    """Runs commands and writes their execution records.

    The records are written as statements the caller commits together with its own writes
    (the job's row): one transaction when a command starts and one when it ends, which is
    most of what the API costs per command.
    """

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    @staticmethod
    def recorded(uuid: str, caller: Caller, vm_uuid: str, request: ExecRequest) -> Executable:
        """The record that ``caller`` asked to run ``request`` on ``vm_uuid`` (as run
        ``uuid``)."""
        return insert(Execution).values(
            uuid=uuid, account_uuid=caller.account_uuid, account_name=caller.account_name,
            vm_uuid=vm_uuid, platform=str(request.platform), command=request.command,
            timeout_seconds=round(request.timeout), outcome=RUNNING, requested_at=utcnow())

    @staticmethod
    def finished(uuid: str, result: ExecResult) -> Executable:
        """The record's update for a command that ran (whatever its exit code)."""
        return _update(
            uuid, outcome=str(result.outcome), exit_code=result.exit_code,
            signal=result.signal, stdout_bytes=result.stdout.total_bytes,
            stderr_bytes=result.stderr.total_bytes,
            stdout_truncated=result.stdout.truncated, stderr_truncated=result.stderr.truncated,
            started_at=result.started_at, finished_at=result.finished_at)

    @staticmethod
    def failed(uuid: str, code: str, details: str | None) -> Executable:
        """The record's update for a command that ended without a result (error ``code``)."""
        return _update(uuid, outcome=FAILED, error_code=code, error_details=details,
                       finished_at=utcnow())

    async def run(self, uuid: str, vm: VmRef, request: ExecRequest) -> ExecResult:
        """Run ``request`` on ``vm`` as run ``uuid``.

        Raises: :class:`QgaDisabled`, ``GuestUnavailable`` (VM not running) before anything
        runs; the engine's errors after.
        """
        if not vm.qga_enabled:
            raise QgaDisabled(f"the guest agent is disabled for VM[uuid:{vm.uuid}] "
                              "(SetVmQga enable=false); enable it to run commands")
        if vm.state != "Running":
            raise GuestUnavailable(f"VM[uuid:{vm.uuid}] is {vm.state}, not Running",
                                   UnavailableReason.VM_NOT_RUNNING)
        return await self._executor.run(vm.target, request, run_id=uuid)

    async def recover(self, uuid: str, vm: VmRef, request: ExecRequest, *,
                      timeout: float) -> ExecResult:
        """Collect the result of run ``uuid`` (started as ``request``) after a restart of
        vmexec. Raises the engine's errors (``ResultLost`` when the guest no longer has it)."""
        return await self._executor.recover(
            vm.target, uuid, platform=request.platform,
            max_output_bytes=request.max_output_bytes, timeout=timeout)


def _update(uuid: str, **values: object) -> Executable:
    return update(Execution).where(Execution.uuid == uuid).values(**values)
