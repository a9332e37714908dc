"""An in-memory hypervisor behind the inventory's :class:`HostSource` protocol, so that the
inventory logic is tested without libvirt or VMs.

:class:`MemoryHosts` is a source factory (``sources(uri)``): each URI a test added with
:meth:`MemoryHosts.add` names a :class:`MemoryHost` whose VMs the test puts, changes and
removes, whose lifecycle events it fires, and which it takes down and brings back. A URI the
test did not add is a host that does not answer. The sources are real implementations of the
protocol (nothing is patched); what they are asked is counted, so a test can tell a lookup
served from memory from one that listed the host.

Single-threaded: use a host from the event loop the inventory runs on, or before the
inventory starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vmexec.agent.targets import AgentTarget, SocketTarget
from vmexec.services.inventory.records import VmRecord
from vmexec.services.inventory.source import ChangeCallback, NoSuchVm, SeenVm, SourceError

KIND = "memory"


def seen(name: str, uuid: str, *, state: str = "Running", platform: str = "Linux",
         **facts: Any) -> SeenVm:
    """A VM as a host reports it (other :class:`SeenVm` fields as keywords)."""
    return SeenVm(uuid=uuid, name=name, state=state, platform=platform, **facts)


class MemoryWatcher:
    def __init__(self, on_change: ChangeCallback) -> None:
        self.on_change = on_change
        self._alive = True

    @property
    def alive(self) -> bool:
        return self._alive

    def die(self) -> None:
        """The event connection dropped (as libvirt's close callback reports it)."""
        self._alive = False

    async def aclose(self) -> None:
        self._alive = False


@dataclass
class MemoryHost:
    uri: str
    reachable: bool = True
    vms: dict[str, SeenVm] = field(default_factory=dict)
    watchers: list[MemoryWatcher] = field(default_factory=list)
    #: How many times the host was listed.
    listings: int = 0

    def put(self, *vms: SeenVm) -> None:
        """Define VMs, or change them (same UUID)."""
        for vm in vms:
            self.vms[vm.uuid] = vm

    def remove(self, *uuids: str) -> None:
        for uuid in uuids:
            del self.vms[uuid]

    def fire(self, uuid: str, what: str = "CHANGED") -> None:
        """A lifecycle event of VM ``uuid``, to every live watcher."""
        for watcher in self.watchers:
            if watcher.alive:
                watcher.on_change(uuid, what)

    def go_down(self) -> None:
        """The host stops answering; its event connections drop."""
        self.reachable = False
        for watcher in self.watchers:
            watcher.die()

    def come_back(self) -> None:
        self.reachable = True

    @property
    def live_watchers(self) -> int:
        return sum(w.alive for w in self.watchers)


class MemorySource:
    """The :class:`HostSource` of a :class:`MemoryHost`."""

    kind = KIND

    def __init__(self, host: MemoryHost) -> None:
        self.host = host
        self.closed = False

    def _answer(self) -> None:
        assert not self.closed, f"source of {self.host.uri} used after aclose"
        if not self.host.reachable:
            raise SourceError(f"{self.host.uri} does not answer")

    async def probe(self) -> None:
        self._answer()

    async def list_vms(self) -> list[SeenVm]:
        self._answer()
        self.host.listings += 1
        return list(self.host.vms.values())

    async def vm(self, uuid: str) -> SeenVm:
        self._answer()
        try:
            return self.host.vms[uuid]
        except KeyError:
            raise NoSuchVm(f"no VM {uuid} on {self.host.uri}") from None

    async def watch(self, on_change: ChangeCallback) -> MemoryWatcher:
        self._answer()
        watcher = MemoryWatcher(on_change)
        self.host.watchers.append(watcher)
        return watcher

    def agent_target(self, vm: VmRecord) -> AgentTarget:
        # A VM put with a socket_path has an agent there (e.g. a fake agent of the test).
        return SocketTarget(vm.socket_path or f"/nonexistent/{vm.uuid}")

    async def aclose(self) -> None:
        self.closed = True


class MemoryHosts:
    """The source factory; see the module docstring."""

    def __init__(self) -> None:
        self.hosts: dict[str, MemoryHost] = {}
        #: Every source opened, in order.
        self.opened: list[MemorySource] = []

    def add(self, uri: str, *vms: SeenVm) -> MemoryHost:
        """A reachable host at ``uri`` with ``vms``."""
        host = self.hosts.setdefault(uri, MemoryHost(uri))
        host.reachable = True
        host.put(*vms)
        return host

    def __call__(self, uri: str) -> MemorySource:
        host = self.hosts.get(uri)
        if host is None:
            host = self.hosts[uri] = MemoryHost(uri, reachable=False)
        source = MemorySource(host)
        self.opened.append(source)
        return source

    def sources_of(self, uri: str) -> list[MemorySource]:
        return [s for s in self.opened if s.host.uri == uri]
