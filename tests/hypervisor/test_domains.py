"""Domain listing, facts and lifecycle events against the real libvirtd and lab VMs."""

from __future__ import annotations

import asyncio
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator

import libvirt
import pytest

from vmexec.hypervisor.domains import (
    DomainEvent,
    DomainEventWatcher,
    DomainState,
    domain_facts,
    list_domains,
)
from vmexec.hypervisor.errors import DomainNotFound, HostUnreachable
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm


@pytest.fixture
async def hosts() -> AsyncIterator[LibvirtHosts]:
    hosts = LibvirtHosts(pool_size=4)
    yield hosts
    hosts.close()


async def test_list_domains_sees_the_lab(hosts: LibvirtHosts, lab_vms: list[LabVm],
                                         lab_variants: dict[str, LabVm]) -> None:
    facts = {f.uuid: f for f in await list_domains(hosts.get(lab_vms[0].uri))}
    for vm in lab_vms:
        found = facts[vm.uuid]
        assert found.name == vm.name
        assert found.state is DomainState.RUNNING
        assert found.has_agent_channel is True
        assert found.vcpus >= 1 and found.memory_bytes > 0
        assert found.platform == "Linux"
    assert facts[lab_variants["nochannel"].uuid].has_agent_channel is False
    assert facts[lab_variants["stopped"].uuid].state is DomainState.SHUTOFF


async def test_domain_facts_by_either_uuid_form(hosts: LibvirtHosts,
                                                lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0]
    host = hosts.get(vm.uri)
    assert (await domain_facts(host, vm.uuid)).name == vm.name
    assert (await domain_facts(host, vm.libvirt_uuid)).name == vm.name
    with pytest.raises(DomainNotFound):
        await domain_facts(host, uuidlib.uuid4().hex)


async def test_unreachable_host(hosts: LibvirtHosts) -> None:
    with pytest.raises(HostUnreachable):
        await list_domains(hosts.get("qemu+tcp://127.0.0.1:1/system"))
    watcher = DomainEventWatcher(hosts.get("qemu+tcp://127.0.0.1:1/system"),
                                 lambda _u, _e: None)
    with pytest.raises(HostUnreachable):
        await watcher.start()
    assert not watcher.alive
    await watcher.aclose()


@pytest.fixture
def scratch_xml(lab_vms: list[LabVm]) -> Iterator[str]:
    name = f"vmexec-events-test-{uuidlib.uuid4().hex[:8]}"
    yield (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>"
           "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os><devices/></domain>")
    conn = libvirt.open(lab_vms[0].uri)
    try:
        domain = conn.lookupByName(name)
        if domain.isActive():
            domain.destroy()
        domain.undefine()
    except libvirt.libvirtError:
        pass  # already gone, as the test intends
    finally:
        conn.close()


async def test_watcher_delivers_lifecycle_events(hosts: LibvirtHosts, lab_vms: list[LabVm],
                                                 scratch_xml: str) -> None:
    events: asyncio.Queue[tuple[str, DomainEvent]] = asyncio.Queue()
    host = hosts.get(lab_vms[0].uri)
    watcher = DomainEventWatcher(host, lambda uuid, event: events.put_nowait((uuid, event)))
    await watcher.start()
    assert watcher.alive
    try:
        def lifecycle() -> str:
            conn = libvirt.open(lab_vms[0].uri)
            try:
                domain = conn.defineXML(scratch_xml)
                domain.create()
                domain.destroy()
                domain.undefine()
                return domain.UUIDString().replace("-", "")
            finally:
                conn.close()

        uuid = await asyncio.to_thread(lifecycle)
        wanted = [DomainEvent.DEFINED, DomainEvent.STARTED, DomainEvent.STOPPED,
                  DomainEvent.UNDEFINED]
        seen: list[DomainEvent] = []
        async with asyncio.timeout(20):
            while DomainEvent.UNDEFINED not in seen:
                event_uuid, event = await events.get()
                if event_uuid == uuid:  # other tests' VMs may change meanwhile
                    seen.append(event)
        # In this order; libvirt may add others between them (RESUMED when starting).
        assert [e for e in seen if e in wanted] == wanted, seen
    finally:
        await watcher.aclose()
    assert not watcher.alive
