"""Several ``vmexec serve`` nodes on one throwaway PostgreSQL share their hosts (issue 12,
inventory): a host added on one node is usable on the others within 2 s, adding it again on
another node says it exists, only its owner lists it, a VM that appears while the nodes run
appears on every node, and when the owner is killed (-9) another takes the host over after its
lease.

The host here is an agent-socket directory of bare ``qemu-ga`` processes (control-plane test:
the commands run on this machine, never evidence of running in a VM); the qemu+ssh host of the
lab's libvirtd across a network namespace is in test_nodes_vm.py.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.nodes import Node, StartNode

from api.test_exec import EXEC, error_of

pytestmark = pytest.mark.slow

HOSTS = "/zstack/v1/hosts"
VMS = "/zstack/v1/vm-instances"
QEMU_GA = "/usr/sbin/qemu-ga"
#: A peer must see a change within this (the issue's "within 2 s").
PEER_DELAY = 2.0
#: A short lease, so that a takeover is quick to see.
LEASE = 3.0


class AgentDirectory:
    """A directory of agent sockets, each a real ``qemu-ga`` on this machine."""

    def __init__(self) -> None:
        # Short and outside tmp_path: unix socket paths are limited to 107 bytes.
        self.base = Path(tempfile.mkdtemp(prefix="vmx-"))
        self.path = self.base / "qga"
        self.path.mkdir()
        self._agents: list[subprocess.Popen[bytes]] = []

    @property
    def uri(self) -> str:
        return f"unix://{self.path}"

    def add(self, name: str) -> None:
        """Start an agent on ``NAME.sock`` and wait until it accepts."""
        state = self.base / f"{name}.state"
        state.mkdir()
        sock = self.path / f"{name}.sock"
        self._agents.append(subprocess.Popen(
            [QEMU_GA, "-m", "unix-listen", "-p", str(sock), "-t", str(state),
             "-f", str(self.base / f"{name}.pid")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 15
        while True:
            with socket.socket(socket.AF_UNIX) as s:
                if s.connect_ex(str(sock)) == 0:
                    return
            assert time.monotonic() < deadline, f"qemu-ga on {sock} did not start"
            time.sleep(0.02)

    def close(self) -> None:
        for agent in self._agents:
            agent.terminate()
        for agent in self._agents:
            agent.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def agent_dir() -> Iterator[AgentDirectory]:
    directory = AgentDirectory()
    yield directory
    directory.close()


def wait_for(what: str, predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.05)


def vm_named(node: Node, name: str) -> dict[str, Any] | None:
    with node.client() as client:
        found = client.get(VMS, params={"q": f"name={name}"}).json()["inventories"]
    return found[0] if found else None


def exec_on(node: Node, vm_uuid: str, command: str) -> httpx.Response:
    with node.client() as client:
        return client.put(EXEC, json={"params": {
            "vmInstanceUuid": vm_uuid, "platform": "Linux", "command": command}})


def assert_runs(node: Node, vm_uuid: str) -> None:
    reply = exec_on(node, vm_uuid, f"echo from {node.node_id}")
    assert reply.status_code == 200, reply.text
    assert (reply.json()["exitCode"], reply.json()["stdout"]) == (0, f"from {node.node_id}\n")


def test_a_socket_directory_host_is_shared_by_the_nodes(
        nodes: StartNode, postgres_url: str, agent_dir: AgentDirectory) -> None:
    agent_dir.add("first")
    a, b, c = (nodes(postgres_url, f"node-{n}", host_lease=LEASE) for n in "abc")
    for node in (a, b, c):
        node.login()
    with a.client() as client:
        added = client.post(f"{HOSTS}/kvm", json={"params": {
            "name": "agents", "libvirtUri": agent_dir.uri}})
    assert added.status_code == 200, added.text
    host = added.json()["inventory"]

    # Known and usable on the other nodes at once (heard, not looked up).
    for node in (b, c):
        wait_for(f"{node.node_id} shows the host's VM",
                 lambda node=node: vm_named(node, "first") is not None, PEER_DELAY)
    first = vm_named(b, "first")
    assert first is not None and first["hostUuid"] == host["uuid"]
    with c.client() as client:
        [seen] = client.get(f"{HOSTS}/{host['uuid']}").json()["inventories"]
    assert seen["status"] == "Connected"
    # (One node per VM: an agent socket serves one client at a time, and the node that used
    # it lets go only after the transport's idle close; see docs/nodes.md.)
    assert_runs(b, first["uuid"])

    # Adding it again on another node: it exists (SYS.1000 before).
    with b.client() as client:
        again = client.post(f"{HOSTS}/kvm", json={"params": {
            "name": "again", "libvirtUri": agent_dir.uri}})
    error = error_of(again, 503, "SYS.1007")
    assert "already added" in error["details"]

    # A VM appearing while the nodes run (a socket directory has no events): a lookup that
    # misses on any node has the owner resync; on every node, usable from each.
    agent_dir.add("second")
    for node in (a, b, c):
        wait_for(f"{node.node_id} shows the new VM",
                 lambda node=node: vm_named(node, "second") is not None, PEER_DELAY)
    second = vm_named(c, "second")
    assert second is not None
    assert_runs(c, second["uuid"])

    # Only the owner lists the host; its peers read the database.
    assert [n.metric("vmexec_hosts_owned") for n in (a, b, c)] == [1, 0, 0]
    assert a.metric("vmexec_host_listings") >= 2
    assert (b.metric("vmexec_host_listings"), c.metric("vmexec_host_listings")) == (0, 0)

    # The owner crashes: a peer takes the host over once the lease expired.
    a.kill()
    wait_for("a peer owns the host", lambda: sum(
        n.metric("vmexec_hosts_owned") for n in (b, c)) == 1, LEASE + 5)
    owner, other = (b, c) if b.metric("vmexec_hosts_owned") == 1 else (c, b)
    agent_dir.add("third")
    for node in (owner, other):
        wait_for(f"{node.node_id} shows the VM found by the new owner",
                 lambda node=node: vm_named(node, "third") is not None, PEER_DELAY)
    third = vm_named(other, "third")
    assert third is not None
    assert_runs(other, third["uuid"])
    assert other.metric("vmexec_host_listings") == 0
    for node in (b, c):
        assert "Traceback" not in node.output(), node.output()[-3000:]
        assert f"shared with the other nodes on this database as node {node.node_id}" in (
            node.output())


def test_a_node_on_sqlite_says_it_is_the_only_one(nodes: StartNode, tmp_path: Path) -> None:
    node = nodes(f"sqlite:///{tmp_path / 'one.db'}", "alone")
    assert "inventory on SQLite: this server is the only node" in node.output()
