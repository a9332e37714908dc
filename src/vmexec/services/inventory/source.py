"""The seam between the inventory and the places VMs are found: :class:`HostSource`.

A host of the inventory is a URI; a *source* is what reads that URI: which VMs it has now
(:class:`SeenVm`, states already ZStack's), one VM's facts after a lifecycle event, a stream of
those events, and where each VM's guest agent is reached. The inventory logic (sync, hosts,
lookups) sees only this protocol, so it is tested with an in-memory source; the real ones
wrap libvirt (:mod:`.libvirt_source`) and agent-socket directories (:mod:`.socket_source`), and
:mod:`.sources` picks one by URI.

Sources translate their own failures into :class:`SourceError` at this edge, so nothing above
knows libvirt's or the file system's exceptions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from vmexec.agent.targets import AgentTarget, LibvirtTarget, SocketTarget

if TYPE_CHECKING:
    from vmexec.services.inventory.records import VmRecord


@dataclass(frozen=True, slots=True)
class SeenVm:
    """A VM as its host reports it now."""

    #: 32 lowercase hex characters.
    uuid: str
    name: str
    #: ZStack state (:class:`vmexec.zstack.inventories.VmState`).
    state: str
    platform: str
    cpu_num: int = 0
    memory_size: int = 0
    has_agent_channel: bool = True
    description: str | None = None
    architecture: str | None = None
    #: Where the VM's agent listens, for hosts that are directories of agent sockets.
    socket_path: str | None = None


class SourceError(Exception):
    """The host cannot be read (unreachable, refused, the listing failed); ``message`` says
    why in words a user can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NoSuchVm(SourceError):
    """The host has no VM of that UUID (any more)."""


#: ``on_change(vm_uuid, what)``: a VM of the host changed; ``what`` names the event (for logs).
ChangeCallback = Callable[[str, str], None]


class Watcher(Protocol):
    """A subscription to a host's lifecycle events."""

    @property
    def alive(self) -> bool:
        """False once the events stopped coming (the connection closed): start a new one."""
        ...

    async def aclose(self) -> None:
        """Unsubscribe; never raises."""
        ...


class NoWatcher:
    """The watcher of a source without lifecycle events: the periodic resync finds changes."""

    @property
    def alive(self) -> bool:
        return True

    async def aclose(self) -> None:
        pass


class HostSource(Protocol):
    """Reads one host (one URI). Every method that talks to the host raises
    :class:`SourceError` when it cannot."""

    @property
    def kind(self) -> str:
        """What kind of host this is, as stored in ``hosts.kind``."""
        ...

    async def probe(self) -> None:
        """Check that the host answers (AddKVMHost).

        Raises:
            SourceError: it does not; the message says why.
        """
        ...

    async def list_vms(self) -> list[SeenVm]:
        """Every VM on the host now.

        Raises:
            SourceError: the host cannot be read.
        """
        ...

    async def vm(self, uuid: str) -> SeenVm:
        """One VM, by UUID (32 hex characters), re-read after a lifecycle event.

        Raises:
            NoSuchVm: the host has no such VM.
            SourceError: the host cannot be read.
        """
        ...

    async def watch(self, on_change: ChangeCallback) -> Watcher:
        """Subscribe to the host's lifecycle events; ``on_change`` runs on the event loop.

        Raises:
            SourceError: the subscription failed.
        """
        ...

    def agent_target(self, vm: VmRecord) -> AgentTarget:
        """Where the guest agent of ``vm`` (a VM of this host) is reached."""
        ...

    async def aclose(self) -> None:
        """Release what the source holds (the host was deleted, or the server stops); never
        raises."""
        ...


class UnusableSource:
    """The source of a stored host whose URI cannot be opened any more (malformed, or refused
    by the server's host URI policy since it was added): every read fails with ``reason``, so
    the host stays Disconnected. Its VMs keep the agent targets a real source would give; the
    agent layer refuses those as well."""

    def __init__(self, uri: str, kind: str, reason: str) -> None:
        self.uri = uri
        self._kind = kind
        self.reason = reason

    @property
    def kind(self) -> str:
        return self._kind

    def _error(self) -> SourceError:
        return SourceError(f"host {self.uri} is not used: {self.reason}")

    async def probe(self) -> None:
        raise self._error()

    async def list_vms(self) -> list[SeenVm]:
        raise self._error()

    async def vm(self, uuid: str) -> SeenVm:
        raise self._error()

    async def watch(self, on_change: ChangeCallback) -> Watcher:
        raise self._error()

    def agent_target(self, vm: VmRecord) -> AgentTarget:
        if vm.socket_path is not None:
            return SocketTarget(vm.socket_path)
        return LibvirtTarget(self.uri, vm.uuid)

    async def aclose(self) -> None:
        pass


#: Opens the source of a host URI.
#:
#: Raises:
#:     InvalidValue: the URI is malformed (:mod:`vmexec.services.errors`).
SourceFactory = Callable[[str], HostSource]
