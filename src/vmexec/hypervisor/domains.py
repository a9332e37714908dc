"""Facts about libvirt domains, the listing of a host's domains, and their lifecycle events.

:class:`DomainFacts` is what the inventory needs of a domain, read from its state and its XML
(``parse_domain_xml`` is pure, so it is tested without libvirt). Blocking calls run through
:meth:`LibvirtHost.call`; libvirt errors come out as :mod:`vmexec.hypervisor.errors`.

Lifecycle events need libvirt's event loop: :func:`ensure_event_loop` registers the default
implementation once per process and runs it in a daemon thread; :class:`DomainEventWatcher`
delivers a host's events on the asyncio loop.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

from vmexec.hypervisor import errors
from vmexec.hypervisor.libvirt_host import LibvirtHost, translate

log = logging.getLogger(__name__)

#: The virtio-serial port name of the QEMU guest agent.
AGENT_CHANNEL = "org.qemu.guest_agent.0"

_LIBOSINFO_NS = "http://libosinfo.org/xmlns/libvirt/domain/1.0"


class DomainState(enum.Enum):
    """libvirt's ``VIR_DOMAIN_*`` states, by libvirt's own names."""

    NOSTATE = 0
    RUNNING = 1
    BLOCKED = 2
    PAUSED = 3
    SHUTDOWN = 4  # being shut down
    SHUTOFF = 5
    CRASHED = 6
    PMSUSPENDED = 7

    @classmethod
    def of(cls, value: int) -> DomainState:
        try:
            return cls(value)
        except ValueError:
            return cls.NOSTATE


class DomainEvent(enum.Enum):
    """libvirt's ``VIR_DOMAIN_EVENT_*`` lifecycle events."""

    DEFINED = 0
    UNDEFINED = 1
    STARTED = 2
    SUSPENDED = 3
    RESUMED = 4
    STOPPED = 5
    SHUTDOWN = 6
    PMSUSPENDED = 7
    CRASHED = 8
    UNKNOWN = -1

    @classmethod
    def of(cls, value: int) -> DomainEvent:
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


#: libvirt's ``VIR_DOMAIN_SHUTOFF_*`` reasons: why a domain is shut off.
_SHUTOFF_REASONS = {1: "shut down", 2: "destroyed", 3: "crashed", 4: "migrated away",
                    5: "saved", 6: "failed to start", 7: "restored from a snapshot",
                    8: "stopped by the daemon"}
_STATE_WORDS = {DomainState.SHUTOFF: "shut off", DomainState.SHUTDOWN: "shutting down",
                DomainState.PMSUSPENDED: "suspended by the guest",
                DomainState.NOSTATE: "in no state"}


def state_of(domain: libvirt.virDomain) -> tuple[DomainState, str]:
    """The domain's state and how to say it, e.g. ``shut off (destroyed)``.

    Raises:
        libvirt.libvirtError: for the caller (inside the hypervisor layer) to translate.
    """
    code, reason = domain.state()
    state = DomainState.of(code)
    words = _STATE_WORDS.get(state, state.name.lower())
    if state is DomainState.SHUTOFF and reason in _SHUTOFF_REASONS:
        words = f"{words} ({_SHUTOFF_REASONS[reason]})"
    return state, words


@dataclass(frozen=True, slots=True)
class DomainFacts:
    #: The domain UUID as 32 lowercase hex characters (ZStack's form).
    uuid: str
    name: str
    state: DomainState
    vcpus: int
    memory_bytes: int
    #: ``Linux`` or ``Windows``: a hint from libosinfo metadata and Hyper-V enlightenments.
    platform: str
    architecture: str | None = None
    description: str | None = None
    #: Whether the domain has the ``org.qemu.guest_agent.0`` channel.
    has_agent_channel: bool = False


def dashed(uuid: str) -> str:
    """A UUID in libvirt's dashed form, from any form.

    Raises:
        ValueError: ``uuid`` is not a UUID.
    """
    return str(uuidlib.UUID(uuid))


_UNITS = {
    "b": 1, "bytes": 1,
    "kb": 1000, "k": 1024, "kib": 1024,
    "mb": 1000 ** 2, "m": 1024 ** 2, "mib": 1024 ** 2,
    "gb": 1000 ** 3, "g": 1024 ** 3, "gib": 1024 ** 3,
    "tb": 1000 ** 4, "t": 1024 ** 4, "tib": 1024 ** 4,
}


def _memory(element: ET.Element | None) -> int:
    if element is None or not (element.text or "").strip():
        return 0
    unit = element.get("unit", "KiB").lower()  # libvirt's default unit is KiB
    return int(element.text or "0") * _UNITS.get(unit, 1024)


def _platform(root: ET.Element) -> str:
    os_ids = [e.get("id", "") for e in root.iter(f"{{{_LIBOSINFO_NS}}}os")]
    if any("microsoft.com/win" in os_id for os_id in os_ids):
        return "Windows"
    # Hyper-V enlightenments are only worth configuring for Windows guests.
    if root.find("features/hyperv") is not None:
        return "Windows"
    return "Linux"


def parse_domain_xml(xml: str, state: DomainState) -> DomainFacts:
    """The facts of a domain from its XML description and its state.

    Raises:
        ValueError: the XML is not a domain description.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ValueError(f"not a domain XML: {exc}") from None
    uuid_text = root.findtext("uuid")
    name = root.findtext("name")
    if root.tag != "domain" or not uuid_text or not name:
        raise ValueError("not a domain XML: no <domain> with <uuid> and <name>")
    vcpu = root.find("vcpu")
    vcpus = 0
    if vcpu is not None:
        vcpus = int(vcpu.get("current") or (vcpu.text or "0").strip() or 0)
    memory = root.find("currentMemory")
    if memory is None:
        memory = root.find("memory")
    os_type = root.find("os/type")
    agent = any(
        channel.find(f"target[@name='{AGENT_CHANNEL}']") is not None
        for channel in root.findall("devices/channel"))
    description = root.findtext("description") or root.findtext("title") or None
    return DomainFacts(
        uuid=uuidlib.UUID(uuid_text.strip()).hex, name=name.strip(), state=state, vcpus=vcpus,
        memory_bytes=_memory(memory), platform=_platform(root),
        architecture=os_type.get("arch") if os_type is not None else None,
        description=description.strip() if description else None, has_agent_channel=agent)


def _facts(domain: libvirt.virDomain) -> DomainFacts:
    state, _reason = domain.state()
    return parse_domain_xml(domain.XMLDesc(0), DomainState.of(state))


async def list_domains(host: LibvirtHost) -> list[DomainFacts]:
    """Every domain defined or running on ``host``.

    Raises:
        HypervisorError: the host cannot be reached or the listing failed.
    """
    def listing(conn: libvirt.virConnect) -> list[DomainFacts]:
        facts = []
        for domain in conn.listAllDomains(0):
            try:
                facts.append(_facts(domain))
            except libvirt.libvirtError as exc:
                # Undefined between the listing and this read: it is gone, not an error.
                if isinstance(translate(exc), errors.DomainNotFound):
                    continue
                raise
        return facts

    return await host.call(listing, f"listing the domains of {host.uri}")


async def domain_facts(host: LibvirtHost, uuid: str) -> DomainFacts:
    """The facts of one domain, by UUID (any form).

    Raises:
        DomainNotFound: no such domain on ``host``.
        HypervisorError: any other failure.
    """
    def read(conn: libvirt.virConnect) -> DomainFacts:
        return _facts(conn.lookupByUUIDString(dashed(uuid)))

    return await host.call(read, f"reading domain {uuid}")


# --- lifecycle events ----------------------------------------------------------------------

_loop_lock = threading.Lock()
_loop_thread: threading.Thread | None = None


def _run_event_loop() -> None:
    while True:
        # Returns after dispatching each batch of events or timers; errors are logged by
        # libvirt and must not end the thread, or every connection's keepalive would stall.
        if libvirt.virEventRunDefaultImpl() < 0:
            log.warning("libvirt event loop iteration failed")


def ensure_event_loop() -> None:
    """Register libvirt's default event loop and run it in a daemon thread, once per process.

    libvirt delivers events (and keepalives) only on connections opened after this.
    """
    global _loop_thread
    with _loop_lock:
        if _loop_thread is not None:
            return
        libvirt.virEventRegisterDefaultImpl()
        _loop_thread = threading.Thread(target=_run_event_loop, name="libvirt-events",
                                        daemon=True)
        _loop_thread.start()


EventHandler = Callable[[str, DomainEvent], None]


class DomainEventWatcher:
    """Lifecycle events of one host's domains, handed to ``handler(uuid_hex, event)`` on the
    asyncio loop that called :meth:`start`.

    The watcher has a connection of its own rather than the host's shared one: event
    registrations die with their connection, and the shared connection is reopened silently
    when libvirtd restarts. Here a closed connection sets :attr:`alive` to false, so the owner
    knows to start a new watcher.
    """

    def __init__(self, host: LibvirtHost, handler: EventHandler) -> None:
        self.host = host
        self._handler = handler
        self._conn: libvirt.virConnect | None = None
        self._callback_id: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._alive = False

    @property
    def alive(self) -> bool:
        return self._alive

    async def start(self) -> None:
        """Open the event connection and subscribe.

        Raises:
            HostUnreachable: libvirtd cannot be reached.
            HypervisorError: the subscription failed.
        """
        self._loop = asyncio.get_running_loop()
        # Run in the host's bounded pool like every blocking libvirt call; the pool hands us
        # its connection, which is not the one we subscribe on (see the class docstring).
        await self.host.call(lambda _shared: self._open(), f"watching events of {self.host.uri}")

    def _open(self) -> None:
        ensure_event_loop()
        try:
            conn = libvirt.open(self.host.uri)
        except libvirt.libvirtError as exc:
            raise errors.HostUnreachable(
                f"cannot connect to libvirt at {self.host.uri}: {exc.get_error_message()}",
                code=exc.get_error_code()) from None
        try:
            conn.registerCloseCallback(self._on_close, None)
            self._callback_id = conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_lifecycle, None)
        except libvirt.libvirtError:
            conn.close()
            raise
        self._conn = conn
        self._alive = True

    def _on_lifecycle(self, _conn: libvirt.virConnect, domain: libvirt.virDomain, event: int,
                      _detail: int, _opaque: object) -> None:
        # Runs in the libvirt event thread: hop to the asyncio loop, never block here.
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        uuid = domain.UUIDString().replace("-", "").lower()
        loop.call_soon_threadsafe(self._deliver, uuid, DomainEvent.of(event))

    def _deliver(self, uuid: str, event: DomainEvent) -> None:
        try:
            self._handler(uuid, event)
        except Exception:  # a handler bug must not stop later events
            log.exception("domain event handler failed for %s %s", uuid, event.name)

    def _on_close(self, _conn: libvirt.virConnect, reason: int, _opaque: object) -> None:
        log.info("event connection to %s closed (reason %d)", self.host.uri, reason)
        self._alive = False

    async def aclose(self) -> None:
        """Unsubscribe and close the event connection; never raises."""
        self._alive = False
        if self._conn is None:
            return
        try:
            await self.host.call(lambda _shared: self._close(), "closing the event connection")
        except errors.HypervisorError:
            # The host is gone (so is the subscription): close our end without it.
            self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        for step in (lambda: conn.domainEventDeregisterAny(self._callback_id),
                     conn.unregisterCloseCallback, conn.close):
            try:
                step()
            except libvirt.libvirtError:
                pass  # the connection is already dead: nothing left to undo
