"""The :class:`~.source.HostSource` of a libvirt URI (``qemu:///system``, ``qemu+ssh://...``).

A thin adapter over :mod:`vmexec.hypervisor.domains`: libvirt's domain states become ZStack's
VM states here, and hypervisor errors become :class:`~.source.SourceError`, so nothing above
this module knows libvirt.
"""

from __future__ import annotations

from vmexec.agent.targets import AgentTarget, LibvirtTarget
from vmexec.db.models_inventory import KIND_LIBVIRT
from vmexec.hypervisor import errors as hv_errors
from vmexec.hypervisor.domains import (
    DomainEventWatcher,
    DomainFacts,
    DomainState,
    dashed,
    domain_facts,
    ensure_event_loop,
    list_domains,
)
from vmexec.hypervisor.libvirt_host import LibvirtHost
from vmexec.services.inventory.records import VmRecord
from vmexec.services.inventory.source import ChangeCallback, NoSuchVm, SeenVm, SourceError, Watcher
from vmexec.zstack.inventories import VmState

#: libvirt's domain states as ZStack's VM states.
ZSTACK_STATE = {
    DomainState.RUNNING: VmState.RUNNING,
    DomainState.BLOCKED: VmState.RUNNING,  # running, waiting on I/O
    DomainState.PAUSED: VmState.PAUSED,
    DomainState.PMSUSPENDED: VmState.PAUSED,
    DomainState.SHUTDOWN: VmState.STOPPING,
    DomainState.SHUTOFF: VmState.STOPPED,
    DomainState.CRASHED: VmState.CRASHED,
    DomainState.NOSTATE: VmState.UNKNOWN,
}


def seen_domain(facts: DomainFacts) -> SeenVm:
    """A domain's facts as the inventory sees a VM."""
    return SeenVm(uuid=facts.uuid, name=facts.name, state=ZSTACK_STATE[facts.state],
                  platform=facts.platform, cpu_num=facts.vcpus, memory_size=facts.memory_bytes,
                  has_agent_channel=facts.has_agent_channel, description=facts.description,
                  architecture=facts.architecture)


class LibvirtSource:
    """One libvirt host; see the module docstring."""

    kind = KIND_LIBVIRT

    def __init__(self, host: LibvirtHost) -> None:
        # Lifecycle events (and keepalives) reach only connections opened after libvirt's
        # event loop is registered, so register it before this source opens any.
        ensure_event_loop()
        self._host = host

    @property
    def uri(self) -> str:
        return self._host.uri

    async def probe(self) -> None:
        try:
            await self._host.call(lambda conn: conn.getLibVersion(), f"connecting to {self.uri}")
        except hv_errors.HypervisorError as exc:
            raise SourceError(exc.message) from None

    async def list_vms(self) -> list[SeenVm]:
        try:
            return [seen_domain(f) for f in await list_domains(self._host)]
        except hv_errors.HypervisorError as exc:
            raise SourceError(exc.message) from None

    async def vm(self, uuid: str) -> SeenVm:
        try:
            return seen_domain(await domain_facts(self._host, uuid))
        except hv_errors.DomainNotFound as exc:
            raise NoSuchVm(exc.message) from None
        except hv_errors.HypervisorError as exc:
            raise SourceError(exc.message) from None

    async def watch(self, on_change: ChangeCallback) -> Watcher:
        watcher = DomainEventWatcher(
            self._host, lambda vm_uuid, event: on_change(vm_uuid, event.name))
        try:
            await watcher.start()
        except hv_errors.HypervisorError as exc:
            raise SourceError(exc.message) from None
        return watcher

    def agent_target(self, vm: VmRecord) -> AgentTarget:
        return LibvirtTarget(self.uri, dashed(vm.uuid))

    async def aclose(self) -> None:
        # The connection is shared with the agents' transports (LibvirtHosts): whoever built
        # LibvirtHosts closes it.
        pass
