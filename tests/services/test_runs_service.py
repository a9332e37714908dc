"""RunService with the real server's services (SQLite, the inventory over in-memory hosts,
the scripted engine): a run belongs to its account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api.conftest import with_sources
from api.doubles import FakeGuest, ScriptedExecutor
from fakes.hosts import MemoryHosts, seen
from sqlalchemy import event

from vmexec.agent.directory import AgentDirectory
from vmexec.api.services import Services
from vmexec.config import Settings
from vmexec.execution.models import ExecRequest
from vmexec.server import error_reply, running_services
from vmexec.services.executions import Caller
from vmexec.services.run_targets import TargetSpec
from vmexec.services.runs import RunNotFound, RunRequest, RunService
from vmexec.zstack.query import Query

LOCAL = "memory://local"
VMS = [seen(f"vm-{i}", f"{i:032x}") for i in range(1, 4)]
OWNER = Caller("a" * 32, "owner")
OTHER = Caller("b" * 32, "other")
ADMIN = Caller("c" * 32, "admin", admin=True)


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    hosts = MemoryHosts()
    hosts.add(LOCAL, *VMS)
    guest = FakeGuest()

    def executor(agents: AgentDirectory) -> ScriptedExecutor:
        return ScriptedExecutor(agents, guest)

    settings = Settings(db=f"sqlite:///{tmp_path / 'vmexec.db'}", libvirt_uri=LOCAL)
    async with running_services(settings, executor=executor,
                                inventory=with_sources(hosts)) as services:
        for vm in VMS:  # the owner's VMs: a Normal account runs on its own VMs only
            await services.inventory.change_owner(vm.uuid, OWNER.account_uuid)
        yield services


async def test_a_run_is_its_accounts_own(services: Services) -> None:
    uuid = "d" * 32
    task = await services.runs.start(
        OWNER, RunRequest(ExecRequest("echo hi"), TargetSpec(vm_uuids=(VMS[0].uuid,))),
        uuid=uuid)
    assert (await task).body["inventory"]["state"] == "Succeeded"
    assert (await services.runs.get(OWNER, uuid))["uuid"] == uuid
    assert (await services.runs.get(ADMIN, uuid))["uuid"] == uuid
    for call in (services.runs.get(OTHER, uuid), services.runs.cancel(OTHER, uuid),
                 services.runs.events(OTHER, uuid)):
        with pytest.raises(RunNotFound):
            await call
    assert (await services.runs.query(OTHER, Query()))["inventories"] == []
    assert [r["uuid"] for r in (await services.runs.query(OWNER, Query()))["inventories"]] == [
        uuid]
    # The targets' executions are the owner's too.
    [target] = (await services.runs.get(OWNER, uuid))["targets"]
    record = await services.executions.get(OWNER, target["executionUuid"])
    assert record.run_uuid == uuid and record.account_uuid == OWNER.account_uuid


async def test_target_writes_are_group_committed(services: Services) -> None:
    # 300 targets, each with a start (target row + execution record) and two ends (the
    # execution's, the target's): one transaction per step would be 900 and more.
    engine = services.db.kw["bind"]
    commits = []
    event.listen(engine.sync_engine, "commit", lambda _connection: commits.append(1))
    targets = tuple(vm.uuid for vm in VMS) * 100
    task = await services.runs.start(
        OWNER, RunRequest(ExecRequest("echo hi"), TargetSpec(vm_uuids=targets),
                          max_concurrency=100), uuid="e" * 32)
    inventory = (await task).body["inventory"]
    assert inventory["targetCounts"]["Succeeded"] == 300
    assert len(commits) < 150, len(commits)


async def test_events_of_a_run_driven_elsewhere_are_read_from_the_database(
        services: Services) -> None:
    # Another RunService on the same database does not drive the run (as a process that has
    # not resumed it yet): its reader polls, and still gets every event once, in order.
    elsewhere = RunService(services.db, services.executions, services.inventory,
                           services.jobs, error_reply)
    uuid = "f" * 32
    task = await services.runs.start(
        OWNER, RunRequest(ExecRequest("echo a\nsleep 0.3\necho b"),
                          TargetSpec(vm_uuids=tuple(vm.uuid for vm in VMS)),
                          max_concurrency=1), uuid=uuid)
    events = [e async for e in await elsewhere.events(OWNER, uuid)]
    await task
    kinds = [e.kind for e in events]
    assert kinds.count("targetStarted") == kinds.count("targetFinished") == 3
    assert kinds[-1] == "runFinished"
    assert events[-1].data["inventory"]["state"] == "Succeeded"
    for vm in VMS:
        mine = [e for e in events if e.data.get("vmInstanceUuid") == vm.uuid]
        assert mine[0].kind == "targetStarted" and mine[-1].kind == "targetFinished"
        assert "".join(e.data["text"] for e in mine if e.kind == "output") == "a\nb\n"
