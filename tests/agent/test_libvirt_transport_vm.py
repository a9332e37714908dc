"""The libvirt transport against real lab VMs: locally, through a remote (qemu+ssh) URI, and
across a restart of libvirtd."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from vmexec.agent.client import GuestAgent
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.errors import AgentNotConnected, DomainNotFound, HostUnreachable
from vmexec.agent.targets import LibvirtTarget
from vmexec.agent.transport.libvirt import LibvirtTransport
from vmexec.execution.engine import Executor
from vmexec.execution.models import ExecRequest
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.lab import libvirtd

pytestmark = pytest.mark.vm


@pytest.fixture
def hosts() -> Iterator[LibvirtHosts]:
    hosts = LibvirtHosts(pool_size=4)
    yield hosts
    hosts.close()


async def test_typed_commands_through_local_libvirt(lab_vms, hosts: LibvirtHosts) -> None:
    vm = lab_vms[0]
    agent = GuestAgent(LibvirtTransport(hosts.get(vm.uri), vm.uuid))
    await agent.ping()
    info = await agent.info()
    assert info.version
    assert info.enabled("guest-exec") and info.enabled("guest-file-read")


async def test_remote_host_over_ssh(lab_vms, ssh_libvirt_uri: str, hosts: LibvirtHosts) -> None:
    """A qemu+ssh:// URI: libvirt logs in through a real sshd and reaches the VM's agent."""
    executor = Executor(AgentDirectory(hosts))
    try:
        results = [await executor.run(LibvirtTarget(ssh_libvirt_uri, vm.uuid),
                                      ExecRequest("hostname; echo e >&2; exit 3"))
                   for vm in lab_vms[:2]]
    finally:
        await executor.aclose()
    assert [r.stdout.text for r in results] == [f"{vm.name}\n" for vm in lab_vms[:2]]
    assert all((r.stderr.text, r.exit_code) == ("e\n", 3) for r in results)


async def test_unreachable_host_and_unknown_domain(hosts: LibvirtHosts) -> None:
    bad = GuestAgent(LibvirtTransport(hosts.get("qemu+tcp://127.0.0.1:1/system"), "0" * 32))
    with pytest.raises(HostUnreachable):
        await bad.ping()
    missing = GuestAgent(LibvirtTransport(hosts.get("qemu:///system"), "0" * 32))
    with pytest.raises(DomainNotFound):
        await missing.ping()


async def test_reconnects_after_libvirtd_restarts(lab_vms, hosts: LibvirtHosts) -> None:
    ours = [d for d in libvirtd.started_daemons() if d.name == "libvirtd"]
    if not ours:
        pytest.skip("libvirtd here is not the lab's: not restarting someone else's daemon")
    vm = lab_vms[0]
    agent = GuestAgent(LibvirtTransport(hosts.get(vm.uri), vm.uuid))
    await agent.ping()
    await asyncio.to_thread(libvirtd.restart_libvirtd)
    # The same transport (and host connection object) works again without being rebuilt.
    deadline = time.monotonic() + 30
    while True:
        try:
            await agent.ping()
            break
        except (HostUnreachable, AgentNotConnected):
            # (libvirtd back, its agent channel not yet: a moment more under load)
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
