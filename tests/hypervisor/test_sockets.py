"""Agent-socket directories: which files are VMs, and their stable identities."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmexec.hypervisor.errors import HostUnreachable
from vmexec.hypervisor.sockets import scan_socket_dir, socket_dir, socket_vm_uuid


@pytest.fixture
def listening() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    yield sockets
    for s in sockets:
        s.close()


def _listen(path: Path, into: list[socket.socket]) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen()
    into.append(s)


def test_scan_lists_only_agent_sockets(tmp_path: Path, listening: list[socket.socket]) -> None:
    _listen(tmp_path / "101.qga", listening)
    _listen(tmp_path / "vm-b.sock", listening)
    _listen(tmp_path / "monitor.mon", listening)  # a socket, but not an agent's
    (tmp_path / "102.qga").write_text("")  # a stale regular file is not a running VM
    vms = scan_socket_dir(str(tmp_path))
    assert [(vm.name, vm.path) for vm in vms] == [
        ("101", str(tmp_path / "101.qga")), ("vm-b", str(tmp_path / "vm-b.sock"))]
    assert all(len(vm.uuid) == 32 and int(vm.uuid, 16) >= 0 for vm in vms)
    assert vms[0].uuid == socket_vm_uuid(str(tmp_path / "101.qga"))


def test_uuid_is_stable_and_path_specific() -> None:
    assert socket_vm_uuid("/run/a.sock") == socket_vm_uuid("/run//a.sock")
    assert socket_vm_uuid("/run/a.sock") != socket_vm_uuid("/run/b.sock")


def test_missing_directory_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(HostUnreachable, match="cannot read agent-socket directory"):
        scan_socket_dir(str(tmp_path / "nope"))


def test_socket_dir_uri() -> None:
    assert socket_dir("unix:///var/run/qemu-server/") == "/var/run/qemu-server"
    for bad in ("qemu:///system", "unix://relative/dir"):
        with pytest.raises(ValueError):
            socket_dir(bad)
