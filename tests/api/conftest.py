"""Fixtures for the API tests that need no guest: a real server over a scripted engine and the
real inventory over in-memory hosts (tests/fakes/hosts.py); and for those on a lab VM's files
(``lab_api``, ``lab_vm``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fakes.hosts import MemoryHosts, seen
from fixtures.server import RunningServer, ServerFactory

from api.doubles import FakeGuest, ScriptedExecutor
from api.guest_helpers import WORKDIR, run
from vmexec.agent.directory import AgentDirectory
from vmexec.lab import LabVm
from vmexec.services.inventory import Inventory, SourceFactory

#: The host every scripted server registers as ``localhost`` on its first start.
LOCAL = "memory://local"
#: The seed's example VM.
VM_1 = seen("vm_1", "fc022ba201c135d8809c5e02bf6bf156")
STOPPED = seen("stopped", "0" * 31 + "2", state="Stopped")
#: SetVmQga disabled its agent (see :func:`scripted`).
NO_QGA = seen("no-qga", "0" * 31 + "3")
VMS = [VM_1, STOPPED, NO_QGA]


def with_sources(sources: SourceFactory, **options: Any) -> Callable[..., Inventory]:
    """An ``inventory=`` factory for the server: the real inventory, reading ``sources``
    instead of the server's hosts."""
    def inventory(**wiring: Any) -> Inventory:
        return Inventory(**{**wiring, **options, "sources": sources})
    return inventory


def scripted(factory: ServerFactory, guest: FakeGuest) -> Callable[..., RunningServer]:
    """``start(**settings)``: a real server whose engine is scripted and whose one host, in
    memory, has :data:`VMS`."""
    def start(**values: object) -> RunningServer:
        def executor(agents: AgentDirectory) -> ScriptedExecutor:
            return ScriptedExecutor(agents, guest)
        hosts = MemoryHosts()
        hosts.add(LOCAL, *VMS)
        server = factory(executor=executor, inventory=with_sources(hosts),
                         libvirt_uri=LOCAL, **values)
        with server.client() as client:
            reply = client.put(f"/zstack/v1/vm-instances/{NO_QGA.uuid}/actions",
                               json={"setVmQga": {"enable": False}})
            assert reply.status_code == 200, reply.text
        return server
    return start


@pytest.fixture
def fake_guest() -> FakeGuest:
    return FakeGuest()


@pytest.fixture
def start_scripted(server_factory: ServerFactory,
                   fake_guest: FakeGuest) -> Callable[..., RunningServer]:
    """A scripted server of this test (for settings of its own, restarts, ...)."""
    return scripted(server_factory, fake_guest)


@pytest.fixture(scope="module")
def server(module_server_factory: ServerFactory) -> RunningServer:
    """A scripted server shared by the test module."""
    return scripted(module_server_factory, FakeGuest())()


@pytest.fixture(scope="module")
def lab_api(module_server_factory: ServerFactory, lab_vms: list[LabVm]) -> RunningServer:
    """A real server on the lab VMs' libvirt, shared by the test module."""
    return module_server_factory(libvirt_uri=lab_vms[0].uri)


@pytest.fixture(scope="module")
def lab_vm(lab_api: RunningServer, lab_vms: list[LabVm]) -> Iterator[LabVm]:
    """The first lab VM, with an empty :data:`~api.guest_helpers.WORKDIR` for the module."""
    vm = lab_vms[0]
    run(lab_api, vm, f"rm -rf {WORKDIR}; mkdir -p {WORKDIR}")
    yield vm
    run(lab_api, vm, f"rm -rf {WORKDIR}")
