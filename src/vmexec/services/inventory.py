"""The hosts vmexec manages and the VMs on them, kept current from the hypervisors.

Hosts are libvirt URIs (``qemu:///system``, ``qemu+ssh://user@ip:port/system``, ...) or
agent-socket directories (``unix:///dir``, see :mod:`vmexec.hypervisor.sockets`). VMs are
discovered from them and kept current three ways: libvirt lifecycle events (a changed domain is
re-read at once), a periodic full resync, and an immediate resync when a lookup misses, so a VM
defined a moment ago is found without waiting.

The hypervisor is the truth about which VMs exist and their state; the database keeps what it
does not know (first-seen and last-change dates, the per-VM agent switch). An in-memory copy of
both tables serves lookups and queries, so resolving a VM for an exec costs no I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.agent import errors as agent_errors
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import AgentTarget, LibvirtTarget, SocketTarget
from vmexec.config import Settings
from vmexec.db.models import utcnow
from vmexec.db.models_inventory import KIND_LIBVIRT, KIND_SOCKET_DIR
from vmexec.hypervisor import errors as hv_errors
from vmexec.hypervisor.domains import (
    DomainEvent,
    DomainEventWatcher,
    DomainFacts,
    DomainState,
    dashed,
    domain_facts,
    ensure_event_loop,
    list_domains,
)
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.hypervisor.sockets import is_socket_dir_uri, scan_socket_dir, socket_dir
from vmexec.services.errors import HostExists, HostUnreachable, InvalidValue, VmNotFound
from vmexec.services.inventory_store import InventoryStore, SeenVm
from vmexec.services.inventory_views import HostRecord, VmRecord, to_wire
from vmexec.zstack.classes import KVM_HOST_INVENTORY, VM_INSTANCE_INVENTORY, schema_map
from vmexec.zstack.exec import Platform
from vmexec.zstack.ids import new_uuid, normalize_uuid
from vmexec.zstack.inventories import HostState, HostStatus, VmState
from vmexec.zstack.query import Query, evaluate

log = logging.getLogger(__name__)

#: Seconds between full resyncs of every host.
DEFAULT_RESYNC_INTERVAL = 10.0
#: Seconds a host may take to list its domains before it counts as unreachable.
LIST_TIMEOUT = 15.0
#: Seconds AddKVMHost waits for the new host to answer.
CONNECT_TIMEOUT = 20.0
#: Seconds GetVmGuestToolsInfo waits for the agent.
GUEST_TOOLS_TIMEOUT = 3.0

#: libvirt's domain states as ZStack's VM states.
_ZSTACK_STATE = {
    DomainState.RUNNING: VmState.RUNNING,
    DomainState.BLOCKED: VmState.RUNNING,  # running, waiting on I/O
    DomainState.PAUSED: VmState.PAUSED,
    DomainState.PMSUSPENDED: VmState.PAUSED,
    DomainState.SHUTDOWN: VmState.STOPPING,
    DomainState.SHUTOFF: VmState.STOPPED,
    DomainState.CRASHED: VmState.CRASHED,
    DomainState.NOSTATE: VmState.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class VmRef:
    """What the exec path needs of a VM: where its agent is and whether it may be used."""

    uuid: str
    name: str
    target: AgentTarget
    qga_enabled: bool
    #: ``Linux`` or ``Windows``.
    platform: str
    #: ZStack state: Running, Stopped, Paused, ...
    state: str


def _seen_domain(facts: DomainFacts) -> SeenVm:
    return SeenVm(uuid=facts.uuid, name=facts.name, state=_ZSTACK_STATE[facts.state],
                  platform=facts.platform, cpu_num=facts.vcpus, memory_size=facts.memory_bytes,
                  has_agent_channel=facts.has_agent_channel, description=facts.description,
                  architecture=facts.architecture)


def _consume_exception(future: asyncio.Future[Any]) -> None:
    # A listing nobody awaits any more (it timed out) must not log "exception never retrieved".
    if not future.cancelled():
        future.exception()


class Inventory:
    """Hosts and VMs; see the module docstring. Methods raise
    :mod:`vmexec.services.errors` for the client's mistakes (unknown VM or host, bad host
    address) as documented on each."""

    def __init__(self, db: async_sessionmaker[AsyncSession], hosts: LibvirtHosts,
                 agents: AgentDirectory, settings: Settings, *,
                 resync_interval: float = DEFAULT_RESYNC_INTERVAL) -> None:
        self._libvirt = hosts
        self._agents = agents
        self._settings = settings
        self._interval = resync_interval
        self._store = InventoryStore(db)
        self._watchers: dict[str, DomainEventWatcher] = {}
        self._host_locks: dict[str, asyncio.Lock] = {}
        self._pending_lists: dict[str, asyncio.Future[list[SeenVm]]] = {}
        self._sync_lock = asyncio.Lock()
        self._last_sync_start = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()
        self._resync_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the inventory, register the local libvirt on first start, sync, keep current.

        Never fails for an unreachable host: it is marked Disconnected and retried.
        """
        ensure_event_loop()  # before any libvirt connection is opened, or it gets no events
        await self._store.load()
        if not self._store.hosts:
            await self._register_local_host()
        await self.sync()
        for host in list(self._store.hosts.values()):
            await self._ensure_watcher(host)
        self._resync_task = asyncio.create_task(self._keep_current(), name="inventory-resync")

    async def aclose(self) -> None:
        """Stop keeping the inventory current; never raises."""
        tasks: list[asyncio.Future[Any]] = [
            *self._tasks, *self._pending_lists.values(),
            *([self._resync_task] if self._resync_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._resync_task = None
        watchers, self._watchers = list(self._watchers.values()), {}
        for watcher in watchers:
            await watcher.aclose()

    async def _register_local_host(self) -> None:
        uri = self._settings.libvirt_uri
        try:
            await asyncio.wait_for(self._probe(uri), CONNECT_TIMEOUT)
        except (hv_errors.HypervisorError, TimeoutError) as exc:
            log.info("local libvirt %s does not answer, not registered: %s", uri, exc)
            return
        await self._insert_host(name="localhost", uri=uri, management_ip="127.0.0.1")
        log.info("registered the local libvirt %s as a host", uri)

    async def _keep_current(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sync()
                for host in list(self._store.hosts.values()):
                    await self._ensure_watcher(host)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end the resync for good
                log.exception("inventory resync failed")

    # --- VMs -----------------------------------------------------------------------------------

    async def resolve(self, vm_uuid: str) -> VmRef:
        """The VM's agent target and state, resyncing once if the VM is not known yet.

        Raises:
            VmNotFound: no such VM on any host.
        """
        vm = await self._find_vm(vm_uuid)
        return VmRef(uuid=vm.uuid, name=vm.name, target=self._target(vm),
                     qga_enabled=vm.qga_enabled, platform=vm.platform, state=vm.state)

    async def inventory(self, vm_uuid: str) -> dict[str, Any]:
        """The VM's VmInstanceInventory JSON.

        Raises:
            VmNotFound: no such VM.
        """
        vm = await self._find_vm(vm_uuid)
        return to_wire(vm.values(self._store.hosts.get(vm.host_uuid)))

    async def query_vms(self, query: Query, uuid: str | None = None) -> dict[str, Any]:
        """QueryVmInstance's reply: ``inventories``, ``total`` when asked, and ``schema``."""
        if uuid is not None:
            query = query.with_uuid(normalize_uuid(uuid))
        return await self._query(query, self._vm_values, VM_INSTANCE_INVENTORY)

    async def get_qga(self, vm_uuid: str) -> bool:
        """Whether vmexec may use the VM's guest agent (GetVmQga).

        Raises:
            VmNotFound: no such VM.
        """
        return (await self._find_vm(vm_uuid)).qga_enabled

    async def set_qga(self, vm_uuid: str, enable: bool) -> None:
        """Allow or forbid using the VM's guest agent (SetVmQga); kept across restarts.

        Raises:
            VmNotFound: no such VM.
        """
        vm = await self._find_vm(vm_uuid)
        await self._store.set_qga(vm.uuid, enable)

    async def guest_tools_info(self, vm_uuid: str) -> dict[str, Any]:
        """GetVmGuestToolsInfo from the live agent: ``status`` Running (answered),
        NotRunning (a channel but no answer) or Not Connected (no channel, VM not running).

        Raises:
            VmNotFound: no such VM.
        """
        vm = await self._find_vm(vm_uuid)
        if vm.state != VmState.RUNNING or not vm.has_agent_channel:
            return {"status": "Not Connected", "features": {}}
        agent = self._agents.get(self._target(vm))
        try:
            info = await agent.info(timeout=GUEST_TOOLS_TIMEOUT)
        except agent_errors.AgentCommandError:
            # guest-info itself is disabled in this agent, yet it answered: it runs.
            return {"status": "Running", "features": {}}
        except (agent_errors.NoAgentChannel, agent_errors.DomainNotRunning,
                agent_errors.DomainNotFound, agent_errors.HostUnreachable):
            return {"status": "Not Connected", "features": {}}
        except agent_errors.AgentError:
            return {"status": "NotRunning", "features": {}}
        features = {
            "guestExec": info.enabled("guest-exec") and info.enabled("guest-exec-status"),
            "guestFileTransfer": all(info.enabled(c) for c in (
                "guest-file-open", "guest-file-read", "guest-file-write", "guest-file-close")),
        }
        reply: dict[str, Any] = {"status": "Running", "features": features}
        if info.version:
            reply["version"] = info.version
        return reply

    async def _find_vm(self, vm_uuid: str) -> VmRecord:
        key = normalize_uuid(vm_uuid)
        vm = self._store.vms.get(key)
        if vm is None:
            await self._sync_after(time.monotonic())
            vm = self._store.vms.get(key)
        if vm is None:
            raise VmNotFound(vm_uuid)
        return vm

    def _target(self, vm: VmRecord) -> AgentTarget:
        # A VM record never outlives its host's (both go in one step), so the host is there.
        return self._target_of(vm, self._store.hosts[vm.host_uuid])

    def _vm_values(self) -> list[dict[str, Any]]:
        vms = sorted(self._store.vms.values(), key=lambda v: (v.create_date, v.name))
        return [vm.values(self._store.hosts.get(vm.host_uuid)) for vm in vms]

    # --- hosts ---------------------------------------------------------------------------------

    async def add_host(self, *, name: str, uri: str, management_ip: str | None = None,
                       username: str | None = None, ssh_port: int | None = None,
                       cluster_uuid: str | None = None, description: str | None = None,
                       host_uuid: str | None = None) -> dict[str, Any]:
        """AddKVMHost: check that ``uri`` answers, register it, discover its VMs.

        Returns the HostInventory JSON. ``host_uuid`` (ZStack's ``resourceUuid``) names the new
        host; by default it gets a random UUID.

        Raises:
            InvalidValue: the URI is malformed.
            HostExists: the URI is registered already, or the UUID is taken.
            HostUnreachable: the host does not answer (the message says why).
        """
        if any(h.uri == uri for h in self._store.hosts.values()):
            raise HostExists(f"a host with the URI {uri} is already added")
        if host_uuid is not None and normalize_uuid(host_uuid) in self._store.hosts:
            raise HostExists(f"a host with the UUID {host_uuid} exists")
        if is_socket_dir_uri(uri):
            try:
                socket_dir(uri)
            except ValueError as exc:
                raise InvalidValue(str(exc)) from None
        elif "://" not in uri:
            raise InvalidValue(
                f"not a libvirt URI: {uri!r} (e.g. qemu+ssh://root@10.0.0.5/system)")
        try:
            await asyncio.wait_for(self._probe(uri), CONNECT_TIMEOUT)
        except TimeoutError:
            raise HostUnreachable(
                f"cannot connect to host {uri}: no answer within {CONNECT_TIMEOUT:g} s") from None
        except hv_errors.HypervisorError as exc:
            raise HostUnreachable(f"cannot connect to host {uri}: {exc.message}") from None
        host = await self._insert_host(
            name=name, uri=uri, management_ip=management_ip, username=username,
            ssh_port=ssh_port, cluster_uuid=cluster_uuid, description=description,
            host_uuid=normalize_uuid(host_uuid) if host_uuid else None)
        await self._sync_host(host)
        await self._ensure_watcher(host)
        return to_wire(self._store.hosts[host.uuid].values())

    async def query_hosts(self, query: Query, uuid: str | None = None) -> dict[str, Any]:
        """QueryHost's reply: ``inventories``, ``total`` when asked, and ``schema``."""
        if uuid is not None:
            query = query.with_uuid(normalize_uuid(uuid))

        def values() -> list[dict[str, Any]]:
            hosts = sorted(self._store.hosts.values(), key=lambda h: (h.create_date, h.name))
            return [h.values() for h in hosts]

        return await self._query(query, values, KVM_HOST_INVENTORY, resync_on_miss=False)

    async def delete_host(self, host_uuid: str) -> None:
        """DeleteHost: forget the host and its VMs (nothing is done to the VMs themselves).

        Deleting an unknown host succeeds, as ZStack's deletes are idempotent.
        """
        key = normalize_uuid(host_uuid)
        host = self._store.hosts.get(key)
        if host is None:
            return
        async with self._lock_for(key):
            watcher = self._watchers.pop(key, None)
            if watcher is not None:
                await watcher.aclose()
            gone = await self._store.delete_host(key)
            self._pending_lists.pop(key, None)
        await self._forget(host, gone)
        log.info("deleted host %s (%s) and its %d VMs", host.name, host.uri, len(gone))

    async def _probe(self, uri: str) -> None:
        if is_socket_dir_uri(uri):
            await asyncio.to_thread(scan_socket_dir, socket_dir(uri))
        else:
            await self._libvirt.get(uri).call(lambda conn: conn.getLibVersion(),
                                              f"connecting to {uri}")

    async def _insert_host(self, *, name: str, uri: str, management_ip: str | None = None,
                           username: str | None = None, ssh_port: int | None = None,
                           cluster_uuid: str | None = None, description: str | None = None,
                           host_uuid: str | None = None) -> HostRecord:
        now = utcnow().replace(microsecond=0)
        host = HostRecord(
            uuid=host_uuid or new_uuid(), name=name, uri=uri,
            kind=KIND_SOCKET_DIR if is_socket_dir_uri(uri) else KIND_LIBVIRT,
            state=HostState.ENABLED, status=HostStatus.CONNECTED, create_date=now, last_op_date=now,
            description=description, management_ip=management_ip, username=username,
            ssh_port=ssh_port, cluster_uuid=cluster_uuid)
        await self._store.add_host(host)
        return host

    # --- keeping current -------------------------------------------------------------------

    async def sync(self) -> None:
        """Resync every host now (waits for a resync already running, then runs another)."""
        await self._sync_after(time.monotonic())

    async def _sync_after(self, moment: float) -> None:
        # Coalesces bursts of misses: a resync that started after `moment` has seen everything
        # the caller could be looking for, so waiting for it is enough.
        async with self._sync_lock:
            if self._last_sync_start >= moment:
                return
            self._last_sync_start = time.monotonic()
            await asyncio.gather(*(self._sync_host(h) for h in list(self._store.hosts.values())))

    async def _sync_host(self, host: HostRecord) -> None:
        async with self._lock_for(host.uuid):
            if host.uuid not in self._store.hosts:
                return  # deleted meanwhile
            try:
                seen = await asyncio.wait_for(asyncio.shield(self._listing(host)),
                                              LIST_TIMEOUT)
            except (hv_errors.HypervisorError, TimeoutError) as exc:
                log.info("host %s (%s) unreachable: %s", host.name, host.uri,
                         getattr(exc, "message", None) or "timed out")
                await self._store.set_host_status(host.uuid, HostStatus.DISCONNECTED)
                await self._store.mark_unknown(host.uuid)
                return
            await self._store.set_host_status(host.uuid, HostStatus.CONNECTED)
            gone = await self._store.reconcile(host.uuid, seen, complete=True)
            await self._forget(host, gone)

    def _listing(self, host: HostRecord) -> asyncio.Future[list[SeenVm]]:
        # A listing that timed out keeps its pool thread until libvirt gives up (keepalive,
        # ssh); later syncs wait on that same listing instead of stacking more stuck threads.
        pending = self._pending_lists.get(host.uuid)
        if pending is None or pending.done():
            pending = asyncio.ensure_future(self._list(host))
            pending.add_done_callback(_consume_exception)
            self._pending_lists[host.uuid] = pending
        return pending

    async def _list(self, host: HostRecord) -> list[SeenVm]:
        if host.kind == KIND_SOCKET_DIR:
            sockets = await asyncio.to_thread(scan_socket_dir, socket_dir(host.uri))
            return [SeenVm(uuid=s.uuid, name=s.name, state=VmState.RUNNING, platform=Platform.LINUX,
                           socket_path=s.path) for s in sockets]
        return [_seen_domain(f) for f in await list_domains(self._libvirt.get(host.uri))]

    async def _refresh_domain(self, host_uuid: str, vm_uuid: str) -> None:
        """Re-read one domain after a lifecycle event."""
        host = self._store.hosts.get(host_uuid)
        if host is None:
            return
        async with self._lock_for(host_uuid):
            try:
                facts = await domain_facts(self._libvirt.get(host.uri), vm_uuid)
            except hv_errors.DomainNotFound:
                await self._forget(host, await self._store.remove_vms(host_uuid, [vm_uuid]))
                return
            except hv_errors.HypervisorError as exc:
                log.debug("cannot re-read domain %s on %s: %s", vm_uuid, host.uri, exc)
                return  # the next resync sorts it out
            await self._store.reconcile(host_uuid, [_seen_domain(facts)], complete=False)

    def _on_event(self, host_uuid: str, vm_uuid: str, event: DomainEvent) -> None:
        log.debug("domain %s on host %s: %s", vm_uuid, host_uuid, event.name)
        task = asyncio.create_task(self._refresh_domain(host_uuid, vm_uuid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ensure_watcher(self, host: HostRecord) -> None:
        if host.kind != KIND_LIBVIRT:
            return
        watcher = self._watchers.get(host.uuid)
        if watcher is not None and watcher.alive:
            return
        if watcher is not None:
            await watcher.aclose()
        watcher = DomainEventWatcher(
            self._libvirt.get(host.uri),
            lambda vm_uuid, event: self._on_event(host.uuid, vm_uuid, event))
        try:
            await asyncio.wait_for(watcher.start(), LIST_TIMEOUT)
        except (hv_errors.HypervisorError, TimeoutError) as exc:
            log.info("no lifecycle events from %s for now: %s", host.uri, exc)
            self._watchers.pop(host.uuid, None)
            return
        if host.uuid in self._store.hosts:
            self._watchers[host.uuid] = watcher
        else:
            await watcher.aclose()

    def _lock_for(self, host_uuid: str) -> asyncio.Lock:
        lock = self._host_locks.get(host_uuid)
        if lock is None:
            lock = self._host_locks[host_uuid] = asyncio.Lock()
        return lock

    async def _forget(self, host: HostRecord, gone: list[VmRecord]) -> None:
        for vm in gone:
            log.debug("VM %s (%s) is gone from host %s", vm.name, vm.uuid, host.name)
            await self._agents.forget(self._target_of(vm, host))

    def _target_of(self, vm: VmRecord, host: HostRecord) -> AgentTarget:
        if vm.socket_path is not None:
            return SocketTarget(vm.socket_path)
        return LibvirtTarget(host.uri, dashed(vm.uuid))

    # --- queries -------------------------------------------------------------------------------

    async def _query(self, query: Query, values: Callable[[], list[dict[str, Any]]],
                     class_name: str, *,
                     resync_on_miss: bool = True) -> dict[str, Any]:
        moment = time.monotonic()
        records = values()
        if resync_on_miss and query.conditions and not any(
                all(c.matches(r) for c in query.conditions) for r in records):
            # Nothing matched: the VM may have been defined a moment ago.
            await self._sync_after(moment)
            records = values()
        result = evaluate(query, records)
        reply: dict[str, Any] = {}
        if not query.count:
            reply["inventories"] = [to_wire(r) for r in result.records]
        if result.total is not None:
            reply["total"] = result.total
        reply["schema"] = schema_map("inventories", class_name, reply.get("inventories"))
        return reply
