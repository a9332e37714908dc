"""Live output across nodes: a reader on one node of an execution another node runs (real
``vmexec serve`` processes on one PostgreSQL database, a bare agent: the control plane is what
is tested here, not a guest).

Before: the node running the command counted only its own readers, so it read the guest's
output at the unwatched pace (every 2 s) and a reader on another node got each line about
3 s after the guest wrote it.
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from nodes.cluster import EXEC, JOBS, AgentsInBackground, Cluster, Node, wait_for
from vmexec.hypervisor.sockets import socket_vm_uuid

pytestmark = pytest.mark.slow

EXECUTIONS = "/zstack/v1/vm-instances/commands/executions"


def _watched(node: Node) -> float:
    """The node's ``vmexec_executions_watched`` metric."""
    metrics = httpx.get(f"{node.url}/metrics", timeout=10).text
    found = re.search(r"^vmexec_executions_watched (\S+)$", metrics, re.MULTILINE)
    assert found, metrics[:2000]
    return float(found.group(1))


def _running(node: Node, job: str) -> bool:
    with node.client() as client:
        inventories = client.get(f"{EXECUTIONS}/{job}").json().get("inventories") or []
    return bool(inventories) and inventories[0]["state"] == "Running"


@pytest.mark.agents
def test_a_reader_on_another_node_has_the_output_followed_live(cluster: Cluster) -> None:
    with AgentsInBackground(1) as agents:
        uri = f"unix://{agents.directory}"
        a = cluster.node("node-a", libvirt_uri=uri).start().wait_ready()
        b = cluster.node("node-b", libvirt_uri=uri).start().wait_ready()
        vm = socket_vm_uuid(str(agents.sockets[0]))
        job = uuid.uuid4().hex
        with a.client() as client:
            accepted = client.post(EXEC, headers={"X-Job-UUID": job}, json={"params": {
                "vmInstanceUuid": vm, "platform": "Linux", "command": "echo first; sleep 120",
                "commandTimeout": 300}})
            assert accepted.status_code == 202, accepted.text
        wait_for(lambda: _running(a, job), 60, "the command runs on A")
        assert _watched(a) == 0  # nobody reads it yet
        with b.client() as client, client.stream("GET", f"{EXECUTIONS}/{job}/output") as events:
            assert events.status_code == 200
            for line in events.iter_lines():
                if "first" in line:
                    break
            # B's reader counts on A (before: never), while it reads.
            wait_for(lambda: _watched(a) == 1, 30, "A follows the output for B's reader")
        # Gone, it stops counting once its mark lapses (a few seconds).
        wait_for(lambda: _watched(a) == 0, 30, "A stops following at the live pace")
        with a.client() as client:
            cancelled = client.put(f"{EXECUTIONS}/{job}/actions",
                                   json={"cancelGuestVmCommand": {}})
            assert cancelled.status_code == 200, cancelled.text
            wait_for(lambda: client.get(JOBS + job).status_code != 202, 60, "the job ended")
        a.stop()
        b.stop()
