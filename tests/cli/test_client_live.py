"""The client's executions and runs (``vmexec.client``), used directly against a real server
and real lab VMs: submit + follow (typed events, resume from an event id), cancel, queries,
runs with their events, and the sync facade's iterators."""

from __future__ import annotations

import pytest
from fixtures.server import RunningServer

from vmexec.client import (
    ApiError,
    AsyncClient,
    Client,
    OutputEvent,
    Result,
    RunFinished,
    TargetFinished,
    TargetOutput,
    TargetStarted,
)
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm

SCRIPT = "printf 'a\\n'; sleep 1; printf 'b\\n' >&2; sleep 1; printf 'c\\n'; exit 3"


async def test_submit_follow_and_resume_from_an_event(server: RunningServer,
                                                      lab_vms: list[LabVm]) -> None:
    async with AsyncClient(server.url, session=server.session) as client:
        uuid = await client.submit({"vmInstanceUuid": lab_vms[0].uuid, "platform": "Linux",
                                    "command": SCRIPT})
        events = [e async for e in client.follow(uuid)]
        *chunks, result = events
        assert all(isinstance(e, OutputEvent) for e in chunks)
        assert isinstance(result, Result) and result.exec_result is not None
        assert result.exec_result.exit_code == 3
        output = [e for e in chunks if isinstance(e, OutputEvent)]
        assert b"".join(e.data for e in output if e.stream == "stdout") == b"a\nc\n"
        assert b"".join(e.data for e in output if e.stream == "stderr") == b"b\n"
        assert [e.offset for e in output] == sorted(e.offset for e in output)
        assert result.offset == output[-1].offset == 6
        # Resumed after the first chunk: the rest, once, then the same result.
        rest = [e async for e in client.follow(uuid, last_event_id=output[0].offset)]
        assert rest == events[1:]
        execution = await client.get_execution(uuid)
        assert (execution.state, execution.exit_code) == ("Failed", 3)
        assert (execution.stdout, execution.stderr) == ("a\nc\n", "b\n")
        found = await client.query_executions(f"uuid={uuid}")
        assert [e.uuid for e in found] == [uuid] and found[0].stdout is None
        with pytest.raises(ApiError) as caught:
            await client.get_execution("0" * 32)
        assert (caught.value.status, caught.value.code) == (404, "SYS.1003")


async def test_cancel_through_the_client(server: RunningServer, lab_vms: list[LabVm]) -> None:
    async with AsyncClient(server.url, session=server.session) as client:
        uuid = await client.submit({"vmInstanceUuid": lab_vms[1].uuid, "platform": "Linux",
                                    "command": "echo started; sleep 600"})
        events = client.follow(uuid)
        first = await anext(events)
        assert isinstance(first, OutputEvent) and first.text == "started\n"
        cancelled = await client.cancel(uuid)
        assert cancelled.state == "Cancelled"
        rest = [e async for e in events]
        assert isinstance(rest[-1], Result) and rest[-1].error is not None
        assert rest[-1].error.code == "VM.EXEC.1010"
        assert (await client.cancel(uuid)).state == "Cancelled"  # idempotent


async def test_a_run_through_the_client(server: RunningServer, lab_vms: list[LabVm]) -> None:
    uuids = [vm.uuid for vm in lab_vms]
    async with AsyncClient(server.url, session=server.session) as client:
        run_uuid = await client.start_run("hostname", vm_uuids=uuids, max_concurrency=2,
                                          max_errors="10%")
        events = [e async for e in client.follow_run(run_uuid)]
        started = {e.vm_instance_uuid for e in events if isinstance(e, TargetStarted)}
        finished = {e.vm_instance_uuid: e.state for e in events
                    if isinstance(e, TargetFinished)}
        output = {e.vm_instance_uuid: e.text for e in events if isinstance(e, TargetOutput)}
        assert started == set(uuids)
        assert finished == dict.fromkeys(uuids, "Succeeded")
        assert output == {vm.uuid: f"{vm.name}\n" for vm in lab_vms}
        assert isinstance(events[-1], RunFinished) and events[-1].run.state == "Succeeded"
        run = await client.get_run(run_uuid)
        assert (run.state, run.max_concurrency, run.total) == ("Succeeded", 2, 3)
        assert {state: n for state, n in run.counts.items() if n} == {"Succeeded": 3}
        assert {t.vm_instance_uuid for t in run.targets} == set(uuids)
        assert all(t.execution_uuid for t in run.targets)
        assert run_uuid in [r.uuid for r in await client.query_runs("state=Succeeded")]
        assert (await client.cancel_run(run_uuid)).state == "Succeeded"  # ended: unchanged


def test_the_sync_facade_follows_too(server: RunningServer, lab_vms: list[LabVm]) -> None:
    with Client(server.url, session=server.session) as client:
        uuid = client.submit({"vmInstanceUuid": lab_vms[2].uuid, "platform": "Linux",
                              "command": "echo one; echo two"})
        events = list(client.follow(uuid))
        assert "".join(e.text for e in events if isinstance(e, OutputEvent)) == "one\ntwo\n"
        assert isinstance(events[-1], Result) and events[-1].ok
        run_uuid = client.start_run("true", conditions=[f"uuid={lab_vms[2].uuid}"])
        assert isinstance(list(client.follow_run(run_uuid))[-1], RunFinished)
        assert client.get_run(run_uuid).state == "Succeeded"
