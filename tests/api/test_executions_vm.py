"""Executions on real lab VMs (issue 11): live output as Server-Sent Events while the guest's
command runs, Last-Event-ID resume to the exact bytes, a reader after the end, cancel of a
running command (its process tree gone from the guest), and history queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from fixtures.server import RunningServer, ServerFactory

from api.test_exec import EXEC, body, error_of
from api.test_exec_async import JOBS, poll
from api.test_executions import EXECUTIONS, events, execution, replay, start, text
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm


@pytest.fixture(scope="module")
def real_server(module_server_factory: ServerFactory, lab_vms: list[LabVm]) -> RunningServer:
    """vmexec with the real engine and inventory, over the lab's libvirt."""
    return module_server_factory(libvirt_uri=lab_vms[0].uri)


@pytest.fixture
def client(real_server: RunningServer) -> Iterator[httpx.Client]:
    with real_server.client() as client:
        yield client


def test_live_chunks_arrive_before_the_command_ends(client: httpx.Client,
                                                    lab_vms: list[LabVm]) -> None:
    job = start(client, "echo a; sleep 3; echo b", vm=lab_vms[0].uuid, commandTimeout=30)
    observed: list[str] = []
    for sse in events(client, job):
        if sse.event == "result":
            observed.append("result")
            break
        # What the server says of the job right after the chunk came: still running or not.
        running = client.get(f"{JOBS}{job}").status_code == 202
        observed.append(f"{sse.json()['text']!r} running={running}")
    assert observed == ["'a\\n' running=True", "'b\\n' running=False", "result"]


def test_last_event_id_resumes_with_the_exact_bytes_once(client: httpx.Client,
                                                         lab_vms: list[LabVm]) -> None:
    script = ("printf 'é1\\n'; sleep 1; printf 'err\\n' >&2; printf 'ü2\\n'; sleep 1; "
              "printf 'end'")
    job = start(client, script, vm=lab_vms[1].uuid, commandTimeout=30)
    first = next(events(client, job))
    rest, result = replay(client, job, first.id)
    whole = [first, *rest]
    assert text(whole, "stdout") == "é1\nü2\nend" and text(whole, "stderr") == "err\n"
    assert result["body"]["stdout"] == "é1\nü2\nend"
    # Ids are byte offsets: each one is the previous plus the chunk's UTF-8 length.
    offset = 0
    for sse in whole:
        offset += len(sse.json()["text"].encode())
        assert int(sse.id) == offset
    # Connected after the end: everything once, and the same result.
    again, again_result = replay(client, job)
    assert text(again) == text(whole) and again_result == result


def test_a_reader_after_the_end_gets_everything_and_the_result(
        client: httpx.Client, lab_vms: list[LabVm]) -> None:
    job = uuid.uuid4().hex
    reply = client.put(EXEC, json=body("seq 1 3; echo oops >&2; exit 5", vm=lab_vms[2].uuid),
                       headers={"X-Job-UUID": job})
    assert reply.status_code == 200, reply.text
    output, result = replay(client, job)
    assert text(output, "stdout") == "1\n2\n3\n" and text(output, "stderr") == "oops\n"
    assert result == {"status": 200, "body": reply.json()}
    found = execution(client, job)
    assert (found["state"], found["exitCode"], found["stdout"]) == ("Failed", 5, "1\n2\n3\n")


def test_cancel_stops_the_command_tree_keeps_its_output_and_is_idempotent(
        client: httpx.Client, lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0].uuid
    marker = uuid.uuid4().hex[:12]
    job = start(client, f"echo started; sh -c 'sleep 60; echo {marker}' & sleep 60",
                vm=vm, commandTimeout=120)
    assert next(events(client, job)).json()["text"] == "started\n"
    reply = client.put(f"{EXECUTIONS}/{job}/actions", json={"cancelGuestVmCommand": {}})
    assert reply.status_code == 200, reply.text
    inventory = reply.json()["inventory"]
    assert inventory["state"] == "Cancelled" and inventory["errorCode"] == "VM.EXEC.1010"
    assert execution(client, job)["stdout"] == "started\n"
    error = error_of(poll(client, f"{JOBS}{job}"), 503, "VM.EXEC.1010")
    assert error["opaque"]["stdout"] == "started\n"
    again = client.put(f"{EXECUTIONS}/{job}/actions", json={"cancelGuestVmCommand": {}})
    assert again.status_code == 200 and again.json()["inventory"] == inventory
    # No process of the run is left in the guest (the background sleep's shell included).
    left = client.put(EXEC, json=body(f"pgrep -f 'echo {marker}' || echo none", vm=vm))
    assert left.json()["stdout"] == "none\n", left.text


def test_history_queries_on_real_executions(client: httpx.Client,
                                            lab_vms: list[LabVm]) -> None:
    marker = uuid.uuid4().hex[:8]
    done = []
    for vm, command in ((lab_vms[1], f"echo {marker}"), (lab_vms[2], f"echo {marker}; false")):
        job = uuid.uuid4().hex
        client.put(EXEC, json=body(command, vm=vm.uuid), headers={"X-Job-UUID": job})
        done.append(job)
    query = client.get(EXECUTIONS, params={"q": [f"command~=%{marker}%", "state=Failed",
                                                 f"vmInstanceUuid={lab_vms[2].uuid}"]})
    assert [i["uuid"] for i in query.json()["inventories"]] == [done[1]]
    newest = client.get(EXECUTIONS, params={"q": f"command~=%{marker}%", "sort": "-createDate",
                                            "limit": "1", "replyWithCount": "true"}).json()
    assert newest["total"] == 2 and newest["inventories"][0]["uuid"] == done[1]
