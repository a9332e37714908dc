"""libvirt handles on lab domains for the lab's own tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libvirt
import pytest

from vmexec.lab import LabVm


@pytest.fixture(scope="session")
def conn() -> Iterator[libvirt.virConnect]:
    connection = libvirt.open("qemu:///system")
    yield connection
    connection.close()


@pytest.fixture(scope="session")
def domain_of(conn: libvirt.virConnect) -> Callable[[LabVm], libvirt.virDomain]:
    def lookup(vm: LabVm) -> libvirt.virDomain:
        return conn.lookupByUUIDString(vm.libvirt_uuid)
    return lookup
