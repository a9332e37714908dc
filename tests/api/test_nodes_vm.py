"""Nodes sharing a libvirt host reached across a network (issue 12): the lab's libvirtd through
``qemu+ssh://`` to an sshd in a network namespace of its own (tests/fixtures/netns.py), two
``vmexec serve`` nodes on one throwaway PostgreSQL.

Every libvirt connection over ``qemu+ssh`` is an ``ssh`` process of the node that opened it,
so counting a node's ``ssh`` children counts its connections to the host: the owner keeps its
event subscription (and the connection its resyncs use); the other node connects on demand to
run a command and closes that connection once idle.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest
from fixtures.netns import ssh_namespace
from fixtures.nodes import Node, StartNode

from api.test_nodes import HOSTS, LEASE, PEER_DELAY, vm_named, wait_for
from vmexec.lab import LabVm

pytestmark = [pytest.mark.vm, pytest.mark.slow]

#: Seconds an unused libvirt connection stays open on these nodes.
IDLE = 1.0
#: The nodes close idle connections at their resync (every 10 s).
IDLE_CHECK = 10.0 + IDLE + 5


def exec_hostname(node: Node, vm: dict[str, str]) -> str:
    with node.client() as client:
        reply = client.put("/zstack/v1/vm-instances/commands/exec", json={"params": {
            "vmInstanceUuid": vm["uuid"], "platform": "Linux", "command": "hostname"}})
    assert reply.status_code == 200, reply.text
    stdout: str = reply.json()["stdout"]
    return stdout


def virsh(*args: str) -> None:
    subprocess.run(["virsh", "-c", "qemu:///system", *args], check=True, capture_output=True,
                   timeout=60)


def test_a_qemu_ssh_host_is_owned_by_one_node_and_used_by_all(
        nodes: StartNode, postgres_url: str, lab_vms: list[LabVm],
        netns_ssh_libvirt_uri: str) -> None:
    settings = {"host_lease": LEASE, "libvirt_idle_close": IDLE,
                "host_uri_parameters": json.dumps(["keyfile"])}
    a = nodes(postgres_url, "node-a", **settings)
    b = nodes(postgres_url, "node-b", **settings)
    for node in (a, b):
        node.login()
    with a.client() as client:
        added = client.post(f"{HOSTS}/kvm", json={"params": {
            "name": "across-the-network", "libvirtUri": netns_ssh_libvirt_uri}})
    assert added.status_code == 200, added.text

    lab_vm = lab_vms[0].name
    wait_for(f"node-b shows {lab_vm}", lambda: vm_named(b, lab_vm) is not None, PEER_DELAY)
    vm = vm_named(b, lab_vm)
    assert vm is not None and vm["hostUuid"] == added.json()["inventory"]["uuid"]
    assert b.ssh_children() == 0  # a node that does not own the host does not connect to it
    assert exec_hostname(b, vm) == f"{lab_vm}\n"
    assert b.ssh_children() == 1  # connected on demand
    assert a.ssh_children() >= 1  # the owner's event subscription
    wait_for("node-b closes its idle connection", lambda: b.ssh_children() == 0, IDLE_CHECK)
    assert a.ssh_children() >= 1
    assert (a.metric("vmexec_hosts_owned"), b.metric("vmexec_hosts_owned")) == (1, 0)
    assert b.metric("vmexec_host_listings") == 0

    # A VM defined while the nodes run: the owner hears libvirt's event, every node shows it.
    name = f"vmexec-nodes-{uuid.uuid4().hex[:8]}"
    xml = (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>"
           "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>")
    subprocess.run(["virsh", "-c", "qemu:///system", "define", "/dev/stdin"], input=xml.encode(),
                   check=True, capture_output=True, timeout=60)
    try:
        for node in (a, b):
            wait_for(f"{node.node_id} shows {name}",
                     lambda node=node: (vm_named(node, name) or {}).get("state") == "Stopped",
                     PEER_DELAY)
    finally:
        virsh("undefine", name)
    for node in (a, b):
        wait_for(f"{node.node_id} forgets {name}",
                 lambda node=node: vm_named(node, name) is None, PEER_DELAY)

    # The owner crashes: node-b takes the host over after the lease, and watches it.
    a.kill()
    wait_for("node-b owns the host", lambda: b.metric("vmexec_hosts_owned") == 1, LEASE + 5)
    wait_for("node-b watches the host", lambda: b.ssh_children() >= 1, 10)
    assert exec_hostname(b, vm) == f"{lab_vm}\n"
    assert "Traceback" not in b.output(), b.output()[-3000:]


def test_a_node_stops_although_its_host_vanished_from_the_network(
        nodes: StartNode, postgres_url: str, tmp_path: Path) -> None:
    # The host's link goes away under open qemu+ssh sessions (half-open TCP): unsubscribing
    # from its events and closing its connection would wait for libvirt's keepalive; a
    # stopping server did not finish within 30 s and was killed.
    (tmp_path / "ssh").mkdir()
    with ssh_namespace(tmp_path / "ssh") as uri:
        node = nodes(postgres_url, "node-a", host_uri_parameters=json.dumps(["keyfile"]))
        node.login()
        with node.client() as client:
            added = client.post(f"{HOSTS}/kvm", json={"params": {
                "name": "vanishing", "libvirtUri": uri}})
        assert added.status_code == 200, added.text
        wait_for("the owner's connections", lambda: node.ssh_children() >= 1, 10)
        link = "vmxh" + uri.split("@10.200.")[1].split(".")[0]
        subprocess.run(["ip", "link", "del", link], check=True, capture_output=True, timeout=30)
        node.stop()
    assert "Application shutdown complete" in node.output(), node.output()[-2000:]
