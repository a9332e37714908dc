"""An agent-socket directory host kept current: sockets appearing and going, the directory
going away (host Disconnected, its VMs Unknown) and coming back. Plain listening sockets stand
in for agents: nothing here talks to an agent."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fixtures.server import ServerFactory

from vmexec.services.inventory import Inventory

HOSTS = "/zstack/v1/hosts"
VMS = "/zstack/v1/vm-instances"


class SocketDir:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._sockets: dict[str, socket.socket] = {}

    def add(self, name: str) -> None:
        self.path.mkdir(exist_ok=True)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(self.path / name))
        s.listen()
        self._sockets[name] = s

    def remove(self, name: str) -> None:
        self._sockets.pop(name).close()
        (self.path / name).unlink()

    def close(self) -> None:
        for s in self._sockets.values():
            s.close()
        self._sockets.clear()


@pytest.fixture
def sockets() -> Iterator[SocketDir]:
    # Short and outside tmp_path: unix socket paths are limited to 107 bytes.
    base = Path(tempfile.mkdtemp(prefix="vmx-"))
    directory = SocketDir(base / "qemu-server")
    yield directory
    directory.close()
    shutil.rmtree(base, ignore_errors=True)


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_socket_directory_is_kept_current(server_factory: ServerFactory,
                                          sockets: SocketDir) -> None:
    sockets.add("101.qga")
    sockets.add("102.qga")
    server = server_factory(inventory=partial(Inventory, resync_interval=0.3))
    with server.client() as client:
        reply = client.post(f"{HOSTS}/kvm", json={"params": {
            "name": "pve", "libvirtUri": f"unix://{sockets.path}"}})
        assert reply.status_code == 200, reply.text
        host = reply.json()["inventory"]

        def vms(*conditions: str) -> list[dict[str, Any]]:
            params = [("q", f"hostUuid={host['uuid']}"), ("sort", "+name"),
                      *(("q", c) for c in conditions)]
            result: list[dict[str, Any]] = client.get(VMS, params=params).json()["inventories"]
            return result

        def host_status() -> str:
            status: str = client.get(f"{HOSTS}/{host['uuid']}").json()["inventories"][0][
                "status"]
            return status

        assert [(vm["name"], vm["state"]) for vm in vms()] == [("101", "Running"),
                                                                ("102", "Running")]
        uuid_101 = vms()[0]["uuid"]

        # A socket that appears is found by the next lookup that misses, without waiting.
        sockets.add("103.qga")
        assert [vm["name"] for vm in vms("name=103")] == ["103"]

        # One that goes away is dropped by the resync.
        sockets.remove("102.qga")
        _wait_for(lambda: [vm["name"] for vm in vms()] == ["101", "103"])

        # The whole directory gone: the host is Disconnected and its VMs Unknown, not dropped.
        sockets.close()
        shutil.rmtree(sockets.path)
        _wait_for(lambda: host_status() == "Disconnected")
        assert {vm["state"] for vm in vms()} == {"Unknown"}

        # Back again: Connected, and the same socket path is the same VM.
        sockets.add("101.qga")
        _wait_for(lambda: host_status() == "Connected")
        _wait_for(lambda: [(vm["name"], vm["state"]) for vm in vms()] == [("101", "Running")])
        assert vms()[0]["uuid"] == uuid_101
