"""ExecutionService as a run's targets use it (record, execute, recover, cancel), on the
server's real services (SQLite, the real inventory over in-memory hosts) with the scripted
engine: what helper code of issue 11 builds on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api.conftest import LOCAL, VM_1, VMS, with_sources
from api.doubles import FakeGuest, ScriptedExecutor
from fakes.hosts import MemoryHosts
from sqlalchemy import select

from vmexec.agent.directory import AgentDirectory
from vmexec.api.services import Services
from vmexec.config import Settings
from vmexec.db.models import Execution
from vmexec.db.writes import execute_writes
from vmexec.execution.models import ExecRequest
from vmexec.server import running_services
from vmexec.services.errors import ExecutionNotFound
from vmexec.services.executions import Caller
from vmexec.zstack.exec import ExecutionState
from vmexec.zstack.ids import new_uuid

ALICE = Caller("a" * 32, "alice")
BOB = Caller("b" * 32, "bob")


@pytest.fixture
async def guest() -> FakeGuest:
    return FakeGuest()


@pytest.fixture
async def services(tmp_path: Path, guest: FakeGuest) -> AsyncIterator[Services]:
    hosts = MemoryHosts()
    hosts.add(LOCAL, *VMS)

    def executor(agents: AgentDirectory) -> ScriptedExecutor:
        return ScriptedExecutor(agents, guest)

    settings = Settings(db=f"sqlite:///{tmp_path / 'x.db'}", libvirt_uri=LOCAL)
    async with running_services(settings, executor=executor,
                                inventory=with_sources(hosts)) as services:
        for vm in VMS:  # alice's: a Normal account reads executions on its own VMs only
            await services.inventory.change_owner(vm.uuid, ALICE.account_uuid)
        yield services


async def _recorded(services: Services, command: str, caller: Caller = ALICE,
                    run_uuid: str | None = None) -> tuple[str, ExecRequest]:
    """Record an execution as a run's target does: in the caller's own transaction."""
    uuid, request = new_uuid(), ExecRequest(command)
    async with services.db() as db:
        await execute_writes(db, [services.executions.record(
            caller, VM_1.uuid, request, uuid=uuid, run_uuid=run_uuid)])
        await db.commit()
    return uuid, request


async def test_record_then_execute_ends_committed(services: Services) -> None:
    run = new_uuid()
    uuid, request = await _recorded(services, "echo out\necho err >&2\nexit 2", run_uuid=run)
    vm = await services.inventory.resolve(VM_1.uuid)
    finished = await services.executions.execute(vm, request, uuid=uuid)
    assert (finished.uuid, finished.state, finished.exit_code, finished.error_code) == (
        uuid, ExecutionState.FAILED, 2, None)
    assert finished.reply.status == 200 and finished.reply.body["stdout"] == "out\n"
    assert finished.reply.writes == ()  # committed already
    inventory = await services.executions.inventory(ALICE, uuid)
    assert (inventory["state"], inventory["runUuid"]) == ("Failed", run)
    assert (inventory["stdout"], inventory["stderr"]) == ("out\n", "err\n")
    reply = await services.executions.result(uuid)
    assert reply is not None and reply.body["exitCode"] == 2 and reply.body["stderr"] == "err\n"
    with pytest.raises(ExecutionNotFound):
        await services.executions.inventory(BOB, uuid)


async def test_failures_are_a_finished_not_an_exception(services: Services) -> None:
    uuid, request = await _recorded(services, "raise unavailable")
    vm = await services.inventory.resolve(VM_1.uuid)
    finished = await services.executions.execute(vm, request, uuid=uuid)
    assert finished.state is ExecutionState.FAILED and finished.error_code == "VM.EXEC.1003"
    assert finished.reply.status == 503
    async with services.db() as db:
        assert await db.scalar(select(Execution.state).where(Execution.uuid == uuid)) == "Failed"


async def test_cancelled_before_it_starts_it_never_starts(services: Services,
                                                          guest: FakeGuest) -> None:
    uuid, request = await _recorded(services, "echo never")
    await services.executions.cancel(ALICE, uuid)
    vm = await services.inventory.resolve(VM_1.uuid)
    finished = await services.executions.execute(vm, request, uuid=uuid)
    assert finished.state is ExecutionState.CANCELLED and finished.error_code == "VM.EXEC.1010"
    assert uuid not in guest.runs
    await services.executions.cancel(ALICE, uuid)  # idempotent: it has ended
    with pytest.raises(ExecutionNotFound):
        await services.executions.cancel(BOB, uuid)


async def test_recover_collects_a_run_from_the_guest(services: Services,
                                                     guest: FakeGuest) -> None:
    uuid, request = await _recorded(services, "echo again")
    guest.requests[uuid] = request  # it ran in the guest before a restart
    finished = await services.executions.recover(VM_1.uuid, request, uuid=uuid)
    assert finished.state is ExecutionState.SUCCEEDED and finished.exit_code == 0
    assert (await services.executions.inventory(ALICE, uuid))["stdout"] == "again\n"
    lost, lost_request = await _recorded(services, "echo lost")
    gone = await services.executions.recover(VM_1.uuid, lost_request, uuid=lost)
    assert gone.state is ExecutionState.FAILED and gone.error_code == "VM.EXEC.1007"


async def test_purge_keeps_running_and_recent_executions(services: Services) -> None:
    running, _ = await _recorded(services, "echo running")
    assert await services.executions.purge_expired() == 0
    assert (await services.executions.get(ALICE, running)).state == "Running"
