"""Issue 12, jobs: several nodes on one PostgreSQL database, any of which may die.

Real ``vmexec serve`` processes on loopback ports; a command that must run in a guest runs in
a lab VM, with a counter file in the guest proving it ran once; webhooks go to a real HTTP
receiver on loopback that counts POSTs by ``X-Job-UUID``.

Before (main at 4ac9381): kill -9 of the node running a command left it ``202 {}`` on the
others for ever (jobs were resumed only at a node's own start); a node's restart took every
running job, also those a live peer ran, and both delivered their webhooks.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from nodes.cluster import (
    EXEC,
    JOBS,
    RUNS,
    AgentsInBackground,
    Cluster,
    Node,
    WebhookReceiver,
    psql,
    wait_for,
)
from vmexec.hypervisor.sockets import socket_vm_uuid
from vmexec.lab import LabVm

pytestmark = pytest.mark.slow

EXECUTIONS = "/zstack/v1/vm-instances/commands/executions"
LEASE = 6.0


def _exec(vm_uuid: str, command: str, timeout: int = 120) -> dict[str, Any]:
    return {"params": {"vmInstanceUuid": vm_uuid, "platform": "Linux", "command": command,
                       "commandTimeout": timeout}}


def _finished(client: httpx.Client, job: str) -> httpx.Response | None:
    reply = client.get(JOBS + job)
    return None if reply.status_code == 202 else reply


def _jobs_running(node: Node) -> float:
    """The node's ``vmexec_jobs_running`` metric: its job tasks and webhook deliveries."""
    metrics = httpx.get(f"{node.url}/metrics", timeout=10).text
    found = re.search(r"^vmexec_jobs_running (\S+)$", metrics, re.MULTILINE)
    assert found, metrics[:2000]
    return float(found.group(1))


@pytest.mark.vm
def test_a_command_whose_node_is_killed_finishes_on_a_peer_once(
        cluster: Cluster, receiver: WebhookReceiver, lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0]
    a = cluster.node("node-a", libvirt_uri=vm.uri, lease=LEASE).start().wait_ready()
    b = cluster.node("node-b", libvirt_uri=vm.uri, lease=LEASE).start().wait_ready()
    job = uuid.uuid4().hex
    counter = f"/tmp/vmexec-nodes-{job}"
    with a.client() as client:
        accepted = client.post(EXEC, json=_exec(
            vm.uuid, f"echo ran >> {counter}; echo started; sleep 15; echo done"),
            headers={"X-Job-UUID": job, "X-Web-Hook": receiver.url})
        assert accepted.status_code == 202, accepted.text
        # Kill A only once the command runs in the guest: its first line came out.
        with client.stream("GET", f"{EXECUTIONS}/{job}/output") as events:
            for line in events.iter_lines():
                if "started" in line:
                    break
    a.kill()
    with b.client() as client:
        # Bounded by the lease, the command's remaining 15 s and a margin (not a speed test).
        reply = wait_for(lambda: _finished(client, job), LEASE + 15 + 45,
                         "the killed node's job finished on its peer")
        assert reply.status_code == 200, reply.text
        assert reply.json()["exitCode"] == 0 and "done" in reply.json()["stdout"]
        execution = client.get(f"{EXECUTIONS}/{job}").json()["inventories"][0]
        assert (execution["state"], execution["stdout"]) == ("Succeeded", "started\ndone\n")
        ran = client.put(EXEC, json=_exec(vm.uuid, f"cat {counter}; rm -f {counter}"))
        assert ran.json()["stdout"] == "ran\n"  # launched once, collected by B
    b.stop()  # a clean stop: every delivery B had begun is over
    assert receiver.count(job) == 1
    assert receiver.bodies[job]["exitCode"] == 0
    assert psql(cluster.db, f"SELECT owner_node FROM api_jobs WHERE uuid = '{job}'") == [
        ["node-b"]]


@pytest.mark.agents
def test_a_restarted_node_does_not_take_a_live_peers_jobs(
        cluster: Cluster, receiver: WebhookReceiver) -> None:
    # The 200 jobs, on bare agents (host processes: the control plane is what is
    # tested here, not a guest).
    with AgentsInBackground(20) as agents:
        uri = f"unix://{agents.directory}"
        a = cluster.node("node-a", libvirt_uri=uri, lease=LEASE).start().wait_ready()
        b = cluster.node("node-b", libvirt_uri=uri, lease=LEASE).start().wait_ready()
        vms = [socket_vm_uuid(str(path)) for path in agents.sockets]
        jobs = [uuid.uuid4().hex for _ in range(200)]
        with a.client() as client:
            for i, job in enumerate(jobs):
                accepted = client.post(EXEC, json=_exec(vms[i % len(vms)], "sleep 20; echo ok"),
                                       headers={"X-Job-UUID": job,
                                                "X-Web-Hook": receiver.url})
                assert accepted.status_code == 202, accepted.text
        b.stop()
        b.start().wait_ready()  # while A's jobs run
        with b.client() as client:
            for job in jobs:
                reply = wait_for(lambda job=job: _finished(client, job), 120,
                                 f"job {job} finished")
                assert reply.status_code == 200, reply.text
                assert reply.json()["stdout"] == "ok\n"
        wait_for(lambda: psql(cluster.db, "SELECT count(*) FROM api_jobs WHERE "
                              "webhook_state = 'pending'") == [["0"]], 60, "webhooks sent")
        a.stop()  # its agent connections closed: B could reach the agents now
        # B ends whatever it took on (before: it resumed all 200 at its start, and stored and
        # sent its own replies once the agents were free).
        wait_for(lambda: _jobs_running(b) == 0, 180, "B has no job left")
        b.stop()
    assert {job: receiver.count(job) for job in jobs} == {job: 1 for job in jobs}
    assert psql(cluster.db, "SELECT DISTINCT owner_node FROM api_jobs") == [["node-a"]]


@pytest.mark.agents
def test_a_node_stopped_cleanly_hands_its_jobs_over_at_once(
        cluster: Cluster, receiver: WebhookReceiver, tmp_path: Path) -> None:
    # A's leases are an hour long: only their release at its stop lets B finish the job.
    with AgentsInBackground(1) as agents:
        uri = f"unix://{agents.directory}"
        a = cluster.node("node-a", libvirt_uri=uri, lease=3600).start().wait_ready()
        b = cluster.node("node-b", libvirt_uri=uri, lease=LEASE).start().wait_ready()
        vm = socket_vm_uuid(str(agents.sockets[0]))
        job = uuid.uuid4().hex
        counter = tmp_path / "counter"  # a bare agent runs its commands on this machine
        with a.client() as client:
            accepted = client.post(EXEC, json=_exec(
                vm, f"echo ran >> {counter}; sleep 8; echo done"),
                headers={"X-Job-UUID": job, "X-Web-Hook": receiver.url})
            assert accepted.status_code == 202, accepted.text
        wait_for(counter.exists, 30, "the command started")
        a.stop()
        with b.client() as client:
            reply = wait_for(lambda: _finished(client, job), 60, "B finished A's job")
        assert reply.status_code == 200 and reply.json()["stdout"] == "done\n", reply.text
        b.stop()
    assert counter.read_text() == "ran\n"
    assert receiver.count(job) == 1


@pytest.mark.agents
def test_a_poll_past_the_announced_api_timeout_is_a_timeout_error(cluster: Cluster) -> None:
    # A dies with an hour-long lease on its job: nobody finishes it, but a poll on B past
    # the apiTimeout A announced gets an error instead of 202 {} for ever.
    with AgentsInBackground(1) as agents:
        uri = f"unix://{agents.directory}"
        a = cluster.node("node-a", libvirt_uri=uri, lease=3600).start().wait_ready()
        b = cluster.node("node-b", libvirt_uri=uri, lease=LEASE).start().wait_ready()
        vm = socket_vm_uuid(str(agents.sockets[0]))
        with a.client() as client:
            accepted = client.post(EXEC, json=_exec(vm, "sleep 5", timeout=1),
                                   headers={"Prefer": "respond-async"})
        assert accepted.status_code == 202, accepted.text
        job = accepted.json()["location"].rsplit("/", 1)[1]
        api_timeout = accepted.json()["apiTimeout"] / 1000
        a.kill()
        # The job keeps the deadline A announced; within it, a poll on B is still 202 {}.
        [[kept]] = psql(cluster.db, "SELECT extract(epoch FROM deadline - created_at) "
                                    f"FROM api_jobs WHERE uuid = '{job}'")
        assert abs(float(kept) - api_timeout) < 2, (kept, api_timeout)
        with b.client() as client:
            assert _finished(client, job) is None
            # Past it (moved back, not waited for: the apiTimeout is the command's timeout
            # plus 45 s): the poll answers the timeout error.
            psql(cluster.db, "UPDATE api_jobs SET deadline = deadline - interval "
                             f"'{api_timeout + 60:.0f} seconds' WHERE uuid = '{job}'")
            reply = wait_for(lambda: _finished(client, job), 30,
                             "the poll answered past the apiTimeout")
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["code"] == "SYS.1001"
        assert "apiTimeout" in reply.json()["error"]["details"]


@pytest.mark.vm
def test_a_run_whose_node_is_killed_finishes_every_target_on_a_peer(
        cluster: Cluster, lab_vms: list[LabVm]) -> None:
    uri = lab_vms[0].uri
    a = cluster.node("node-a", libvirt_uri=uri, lease=LEASE).start().wait_ready()
    b = cluster.node("node-b", libvirt_uri=uri, lease=LEASE).start().wait_ready()
    run = uuid.uuid4().hex
    counter = f"/tmp/vmexec-nodes-run-{run}"
    vms = [vm.uuid for vm in lab_vms] * 2
    with a.client() as client:
        accepted = client.post(RUNS, json={"params": {
            "command": f"echo ran >> {counter}; echo started; sleep 10; echo done",
            "platform": "Linux", "commandTimeout": 120, "maxConcurrency": 3,
            "targets": {"vmInstanceUuids": vms}}}, headers={"X-Job-UUID": run})
        assert accepted.status_code == 202, accepted.text
        # Kill A once a target's command runs in its guest (its first line came out), the
        # other targets of the first wave starting, the second wave pending.
        with client.stream("GET", f"{RUNS}/{run}/events") as events:
            for line in events.iter_lines():
                if "started" in line:
                    break
    a.kill()
    with b.client() as client:
        reply = wait_for(lambda: _finished(client, run), LEASE + 2 * 10 + 60,
                         "the killed node's run finished on its peer")
        assert reply.status_code == 200, reply.text
        targets = client.get(f"{RUNS}/{run}").json()["inventories"][0]["targets"]
        assert [t["state"] for t in targets] == ["Succeeded"] * len(vms)
        for vm in lab_vms:  # each VM is a target twice: its command ran twice, no more
            ran = client.put(EXEC, json=_exec(vm.uuid, f"cat {counter}; rm -f {counter}"))
            assert ran.json()["stdout"] == "ran\nran\n", vm.name
    b.stop()
