"""AddKVMHost, QueryHost and DeleteHost over real HTTP: the local libvirt, unreachable hosts,
and an agent-socket directory of real qemu-ga processes."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from fixtures.server import RunningServer

from vmexec.lab import LabVm
from vmexec.lab.bare_agents import BareAgents

HOSTS = "/zstack/v1/hosts"
ADD = "/zstack/v1/hosts/kvm"
VMS = "/zstack/v1/vm-instances"
HOST_CLASS = "org.zstack.kvm.KVMHostInventory"


def add_host(client: httpx.Client, **params: Any) -> httpx.Response:
    params.setdefault("name", "test-host")
    return client.post(ADD, json={"params": params})


def assert_error(reply: httpx.Response, status: int, code: str, fragment: str) -> None:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["code"] == code
    assert fragment in error["details"]


@pytest.mark.vm
def test_local_libvirt_is_registered_at_first_start(vmexec_server: RunningServer,
                                                    lab_vms: list[LabVm]) -> None:
    with vmexec_server.client() as client:
        body = client.get(HOSTS).json()
        [host] = body["inventories"]
        assert body["schema"] == {"inventories[0]": HOST_CLASS}
        assert host["libvirtUri"] == "qemu:///system"
        assert host["hypervisorType"] == "KVM"
        assert (host["state"], host["status"]) == ("Enabled", "Connected")
        assert re.fullmatch(r"[0-9a-f]{32}", host["uuid"])
        assert client.get(HOSTS, params={"q": "status=Connected"}).json()["inventories"] == [
            host]
        assert client.get(f"{HOSTS}/{host['uuid']}").json()["inventories"] == [host]
        vms = client.get(VMS, params={"q": f"hostUuid={host['uuid']}"}).json()["inventories"]
        assert {vm.uuid for vm in lab_vms} <= {vm["uuid"] for vm in vms}


def test_add_host_that_does_not_answer(vmexec_server: RunningServer) -> None:
    with vmexec_server.client() as client:
        # Nothing listens on port 1 of the loopback: ssh is refused at once.
        reply = add_host(client, managementIp="127.0.0.1", username="root", password="x",
                         sshPort=1, clusterUuid="c" * 32)
        assert_error(reply, 503, "SYS.1006", "cannot connect to host qemu+ssh://root@127.0.0.1:1")
        reply = add_host(client, libvirtUri="qemu+tcp://127.0.0.1:1/system")
        assert_error(reply, 503, "SYS.1006", "cannot connect to host qemu+tcp://127.0.0.1:1")
        reply = add_host(client, libvirtUri="unix:///nonexistent/vmexec-sockets")
        assert_error(reply, 503, "SYS.1006", "cannot read agent-socket directory")
        # None of them was added.
        uris = [h["libvirtUri"] for h in client.get(HOSTS).json()["inventories"]]
        assert not any("127.0.0.1:1" in uri or "nonexistent" in uri for uri in uris)


@pytest.mark.parametrize(("params", "status", "fragment"), [
    ({"managementIp": "127.0.0.1"}, 503, "needs managementIp and username"),
    ({"libvirtUri": "not a uri"}, 503, "not a libvirt URI"),
    ({"libvirtUri": "unix://relative"}, 503, "absolute path"),
    ({"libvirtUri": "qemu:///x", "resourceUuid": "short"}, 503, "resourceUuid"),
    ({"libvirtUri": "qemu:///x", "sshPort": 0}, 503, "sshPort"),
    ({"libvirtUri": "qemu:///x", "sshPort": "twenty-two"}, 400, "sshPort"),
])
def test_add_host_bad_arguments(vmexec_server: RunningServer, params: dict[str, Any],
                                status: int, fragment: str) -> None:
    with vmexec_server.client() as client:
        reply = add_host(client, **params)
        assert reply.status_code == status, reply.text
        assert fragment in reply.json()["error"]["details"]


def test_add_host_without_name_or_session(vmexec_server: RunningServer) -> None:
    with vmexec_server.client() as client:
        reply = client.post(ADD, json={"params": {"libvirtUri": "qemu:///system"}})
        assert reply.status_code == 503
        assert reply.json()["error"]["code"] == "SYS.1007"
    with vmexec_server.client(authenticated=False) as anonymous:
        assert add_host(anonymous, libvirtUri="unix:///tmp").status_code == 400


@pytest.mark.agents
def test_socket_directory_host(vmexec_server: RunningServer) -> None:
    async def with_agents() -> None:
        async with BareAgents(3) as agents:
            directory = agents.sockets[0].parent
            await asyncio.to_thread(check_socket_host, vmexec_server, f"unix://{directory}",
                                    [s.stem for s in agents.sockets])

    asyncio.run(with_agents())


def check_socket_host(server: RunningServer, uri: str, stems: list[str]) -> None:
    with server.client() as client:
        reply = client.post(ADD, json={"params": {"name": "bare agents", "libvirtUri": uri,
                                                  "resourceUuid": "ab" * 16}},
                            headers={"X-JSON-Schema": "true"})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        host = body["inventory"]
        assert body["schema"] == {"inventory": HOST_CLASS}
        assert host["uuid"] == "ab" * 16
        assert (host["libvirtUri"], host["status"], host["name"]) == (uri, "Connected",
                                                                      "bare agents")

        # Every socket is a running VM named after its file.
        vms = client.get(VMS, params=[("q", f"hostUuid={host['uuid']}"),
                                      ("sort", "+name")]).json()["inventories"]
        assert [vm["name"] for vm in vms] == sorted(stems)
        assert {vm["state"] for vm in vms} == {"Running"}
        assert all(re.fullmatch(r"[0-9a-f]{32}", vm["uuid"]) for vm in vms)

        # Their agents answer (host qemu-ga processes: control-plane evidence only).
        info = client.get(f"{VMS}/{vms[0]['uuid']}/guest-tools-infos").json()
        assert info["status"] == "Running"
        assert info["features"]["guestExec"] is True

        # The same directory cannot be added twice.
        assert_error(add_host(client, libvirtUri=uri), 503, "SYS.1007", "already added")

        # DeleteHost forgets the host and its VMs; deleting again is fine.
        assert client.delete(f"{HOSTS}/{host['uuid']}").json() == {}
        assert client.get(f"{HOSTS}/{host['uuid']}").json()["inventories"] == []
        assert client.get(VMS, params={"q": f"hostUuid={host['uuid']}"}).json()[
            "inventories"] == []
        gone = client.get(f"{VMS}/{vms[0]['uuid']}/qga")
        assert gone.status_code == 503
        assert client.delete(f"{HOSTS}/{host['uuid']}").status_code == 200
