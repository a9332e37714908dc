"""Keeping the inventory current with its hosts' sources.

Three ways, as the package docstring says: lifecycle events (a changed VM is re-read at once),
a periodic full resync, and a resync on demand (a lookup that misses). A resync reads every
host at once, one listing per host; a host that does not answer within :data:`LIST_TIMEOUT`
is Disconnected and its VMs Unknown until it answers again.

Changes of one host are serialised by a lock per host, so a resync, an event and a deletion of
the same host never interleave their writes.

Several nodes may share one database. Each host then has one owner: the node holding the lease
on its row (:meth:`.InventoryStore.claim_hosts`, renewed every third of the lease). Only the
owner lists the host, watches its events and writes its VMs; the other nodes re-read the
database (when a peer announces a change, when a lookup misses, at every resync). A node whose
owner died takes its hosts once their leases expire; a node shutting down releases its leases,
so a peer takes them at its next renewal.

The hosts are shared out: a node takes free hosts only up to its share, ``ceil(hosts / live
nodes)`` (live: a heartbeat renewed with the host leases), and a node above its share (it was
alone when the others started, or added hosts) releases the surplus at its next renewal, for a
node below its share to take at its own. A released host is unowned until then: at most a third
of a lease (its VMs are still read from the database and usable meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import AgentTarget
from vmexec.services.errors import InvalidValue
from vmexec.services.inventory.peers import PeerResyncs
from vmexec.services.inventory.records import HostRecord, VmRecord
from vmexec.services.inventory.source import (
    HostSource,
    NoSuchVm,
    SeenVm,
    SourceError,
    SourceFactory,
    UnusableSource,
    Watcher,
)
from vmexec.services.inventory.store import InventoryStore
from vmexec.zstack.inventories import HostStatus

log = logging.getLogger(__name__)

#: Seconds between full resyncs of every host.
DEFAULT_RESYNC_INTERVAL = 10.0
#: Seconds a host may take to list its VMs (or subscribe to events) before it counts as
#: unreachable.
LIST_TIMEOUT = 15.0
#: Seconds a server stopping waits for a host's event subscription to close.
CLOSE_TIMEOUT = 5.0
#: Seconds a node owns a host without renewing its lease.
DEFAULT_HOST_LEASE = 15.0
#: Seconds an unused libvirt connection stays open.
DEFAULT_CONNECTION_IDLE = 60.0


def _consume_exception(future: asyncio.Future[Any]) -> None:
    # A listing nobody awaits any more (it timed out) must not log "exception never retrieved".
    if not future.cancelled():
        future.exception()


class Sync:
    """Keeps ``store`` current; see the module docstring.

    Holds the open source of every host (opened on first use with ``sources``) and tells
    ``agents`` to drop the clients of VMs that are gone.
    """

    def __init__(self, store: InventoryStore, sources: SourceFactory, agents: AgentDirectory,
                 *, interval: float = DEFAULT_RESYNC_INTERVAL, node_id: str | None = None,
                 lease: float = DEFAULT_HOST_LEASE,
                 connection_idle: float = DEFAULT_CONNECTION_IDLE) -> None:
        self._store = store
        self._open_source = sources
        self._agents = agents
        self._interval = interval
        #: This node's name on the host rows it owns.
        self.node_id = node_id or uuid.uuid4().hex
        self.lease = lease
        self._connection_idle = connection_idle
        #: The hosts this node owns (lists, watches, writes), as of the last claim.
        self.owned: set[str] = set()
        self._owned_until = float("-inf")
        #: Nodes with a fresh heartbeat at the last claim, this one included.
        self.live_nodes = 0
        self._lease_task: asyncio.Task[None] | None = None
        #: Listings of hosts this node made (its share of the resync work), for metrics.
        self.listings = 0
        #: The peers that resync for this node's misses (PostgreSQL; ``None`` on SQLite).
        self.peers: PeerResyncs | None = None
        #: Hosts being added by this node: their source is open before their row exists.
        self._adopting: set[str] = set()
        self._sources: dict[str, HostSource] = {}
        self._watchers: dict[str, Watcher] = {}
        self._host_locks: dict[str, asyncio.Lock] = {}
        self._pending_lists: dict[str, asyncio.Future[list[SeenVm]]] = {}
        self._sync_lock = asyncio.Lock()
        self._last_sync_start = float("-inf")
        self._tasks: set[asyncio.Task[None]] = set()
        self._resync_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Claim the hosts nobody owns, sync them, watch their events, and from now on renew
        the leases and resync every ``interval``."""
        await self._claim()
        await self.sync()
        await self.watch_all()
        self._resync_task = asyncio.create_task(self._keep_current(), name="inventory-resync")
        self._lease_task = asyncio.create_task(self._keep_leases(), name="inventory-leases")

    async def aclose(self) -> None:
        """Stop keeping the inventory current, release this node's hosts to its peers and
        close the sources; never raises."""
        tasks: list[asyncio.Future[Any]] = [
            *self._tasks, *self._pending_lists.values(),
            *([self._resync_task] if self._resync_task else []),
            *([self._lease_task] if self._lease_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._resync_task = self._lease_task = None
        if self.peers is not None:
            await self.peers.aclose()
        if self.owned:
            try:
                await self._store.release_hosts(self.node_id)
            except Exception:  # the database is gone: peers take over when the leases expire
                log.warning("could not release this node's hosts; peers take them over when "
                            "their leases expire", exc_info=True)
            self.owned = set()
        watchers, self._watchers = list(self._watchers.values()), {}
        for watcher in watchers:
            # A host gone from the network (no RST, no keepalive answer yet) would hold the
            # unsubscription until TCP gives up; a server stopping does not wait for that.
            try:
                await asyncio.wait_for(watcher.aclose(), CLOSE_TIMEOUT)
            except TimeoutError:
                log.warning("the event subscription of a host did not close within %g s; "
                            "left to die with the process", CLOSE_TIMEOUT)
        sources, self._sources = list(self._sources.values()), {}
        for source in sources:
            await source.aclose()

    async def _keep_current(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.sync()
                await self.watch_all()
                # Connections made to run commands on VMs of hosts other nodes own.
                await self._agents.hosts.close_idle(self._connection_idle)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug here must not end the resync for good
                log.exception("inventory resync failed")

    def libvirt_connections(self) -> int:
        return self._agents.hosts.connections()

    # --- host leases -------------------------------------------------------------------------

    def owns(self, host_uuid: str) -> bool:
        """Whether this node lists and watches the host now: it did at the last claim, and
        that claim's lease has not run out (not renewed in time: a peer may hold it now)."""
        return host_uuid in self.owned and time.monotonic() < self._owned_until

    def owned_count(self) -> int:
        return len(self.owned) if time.monotonic() < self._owned_until else 0

    def take(self, host_uuid: str) -> None:
        """This node inserted the host with its own lease (AddKVMHost)."""
        self.owned.add(host_uuid)
        self._adopting.discard(host_uuid)

    async def _claim(self) -> set[str]:
        """Renew and take leases, release the hosts beyond this node's share; returns the
        hosts this node gained."""
        started = time.monotonic()
        claim = await self._store.claim_hosts(self.node_id, self.lease)
        owned = claim.owned
        self._owned_until = started + self.lease
        self.live_nodes = claim.live_nodes
        gained, lost = owned - self.owned, self.owned - owned
        self.owned = owned
        for host_uuid in lost:
            log.info("host %s is owned by another node now", host_uuid)
            watcher = self._watchers.pop(host_uuid, None)
            if watcher is not None:
                await watcher.aclose()
        # Never both: a node below its share releases nothing, one above it takes nothing.
        surplus = len(owned) - claim.share
        if surplus > 0:
            # A fixed choice (the last by UUID) among the hosts no resync or event holds now:
            # waiting for a listing (up to LIST_TIMEOUT) would delay the next renewal.
            free = [u for u in sorted(owned) if not self._lock_for(u).locked()]
            released = free[len(free) - min(surplus, len(free)):]
            for host_uuid in released:
                await self._release(host_uuid)
                gained.discard(host_uuid)
            if released:
                log.info("node %s released %d hosts to its peers (%d live nodes: a share "
                         "of %d)", self.node_id, len(released), claim.live_nodes, claim.share)
        if gained:
            log.info("node %s owns %d more hosts (%d in all)", self.node_id, len(gained),
                     len(self.owned))
        return gained

    async def _release(self, host_uuid: str) -> None:
        """Hand one host over: stop using it as its owner first (under its lock, so no
        resync or event of this node writes it after), then end the lease."""
        async with self._lock_for(host_uuid):
            self.owned.discard(host_uuid)
            await self._store.release_host(self.node_id, host_uuid)
        watcher = self._watchers.pop(host_uuid, None)
        if watcher is not None:
            # Its events are ignored from now on (owns() is false); a host gone from the
            # network must not hold the next renewal.
            try:
                await asyncio.wait_for(watcher.aclose(), CLOSE_TIMEOUT)
            except TimeoutError:
                log.warning("the event subscription of a released host did not close "
                            "within %g s", CLOSE_TIMEOUT)

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                gained = await self._claim()
                if gained:
                    await self._store.load()  # the previous owner's last writes
                    hosts = [h for u in gained if (h := self._store.hosts.get(u)) is not None]
                    await asyncio.gather(*(self.sync_host(h) for h in hosts))
                    for host in hosts:
                        await self.watch(host)
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: owns() lets the hosts go in time
                log.warning("could not renew this node's host leases", exc_info=True)

    # --- sources -----------------------------------------------------------------------------

    def source(self, host: HostRecord) -> HostSource:
        """The open source of ``host``, opened now if it is not yet."""
        source = self._sources.get(host.uuid)
        if source is None:
            try:
                source = self._open_source(host.uri)
            except InvalidValue as exc:
                # Stored before the server's host URI policy refused it: never opened.
                log.warning("host %s (%s) is not used: %s", host.name, host.uri, exc.message)
                source = UnusableSource(host.uri, host.kind, exc.message)
            self._sources[host.uuid] = source
        return source

    def adopt(self, host_uuid: str, source: HostSource) -> None:
        """Use ``source`` (already open and probed) for the host ``host_uuid``."""
        self._sources[host_uuid] = source
        self._adopting.add(host_uuid)

    def abandon(self, host_uuid: str) -> None:
        """Undo :meth:`adopt` (the host could not be stored); the caller closes the source."""
        self._sources.pop(host_uuid, None)
        self._adopting.discard(host_uuid)

    def target(self, vm: VmRecord) -> AgentTarget:
        """Where the agent of ``vm`` is reached."""
        # A VM record never outlives its host's (both go in one step), so the host is there.
        return self.source(self._store.hosts[vm.host_uuid]).agent_target(vm)

    async def remove_host(self, host: HostRecord) -> list[VmRecord]:
        """Forget ``host`` and its VMs: stop watching it, delete both from the store, close its
        source. Returns the VMs removed. Raises what the database raises."""
        async with self._lock_for(host.uuid):
            source = self.source(host)
            watcher = self._watchers.pop(host.uuid, None)
            if watcher is not None:
                await watcher.aclose()
            gone = await self._store.delete_host(host.uuid)
            self._pending_lists.pop(host.uuid, None)
            self._sources.pop(host.uuid, None)
        await self._forget(source, host, gone)
        await source.aclose()
        return gone

    # --- resyncs -----------------------------------------------------------------------------

    async def sync(self) -> None:
        """Resync every host now (waits for a resync already running, then runs another)."""
        await self.sync_after(time.monotonic())

    async def sync_after(self, moment: float) -> None:
        """Make sure a resync that started after ``moment`` (``time.monotonic()``) finished."""
        # Coalesces bursts of misses: a resync that started after `moment` has seen everything
        # the caller could be looking for, so waiting for it is enough.
        async with self._sync_lock:
            if self._last_sync_start >= moment:
                return
            self._last_sync_start = time.monotonic()
            # Peers' hosts as they wrote them, then this node's own, listed.
            await self.refresh()
            await asyncio.gather(*(self.sync_host(h) for h in list(self._store.hosts.values())
                                   if self.owns(h.uuid)))

    async def sync_on_miss(self, moment: float) -> None:
        """A lookup missed: resync this node's hosts and have the owners of the others resync
        theirs (a VM defined a moment ago, on a host without events or before its event), then
        re-read; coalesced as :meth:`sync_after` is."""
        asking = self.peers.ask(moment) if self.peers is not None else None
        await self.sync_after(moment)
        if asking is not None:
            await asking

    async def refresh(self) -> None:
        """Re-read the inventory from the database (peers' changes), and let go of what this
        node held for hosts deleted meanwhile (on any node)."""
        await self._store.load()
        for host_uuid in [u for u in self._sources
                          if u not in self._store.hosts and u not in self._adopting]:
            watcher = self._watchers.pop(host_uuid, None)
            if watcher is not None:
                await watcher.aclose()
            self._pending_lists.pop(host_uuid, None)
            self.owned.discard(host_uuid)
            await self._sources.pop(host_uuid).aclose()

    async def sync_host(self, host: HostRecord) -> None:
        """Bring the host's status and VMs in line with what its source lists now."""
        async with self._lock_for(host.uuid):
            if host.uuid not in self._store.hosts:
                return  # deleted meanwhile
            source = self.source(host)
            self.listings += 1
            try:
                seen = await asyncio.wait_for(asyncio.shield(self._listing(host, source)),
                                              LIST_TIMEOUT)
            except (SourceError, TimeoutError) as exc:
                log.info("host %s (%s) unreachable: %s", host.name, host.uri,
                         getattr(exc, "message", None) or "timed out")
                await self._store.set_host_status(host.uuid, HostStatus.DISCONNECTED)
                await self._store.mark_unknown(host.uuid)
                return
            await self._store.set_host_status(host.uuid, HostStatus.CONNECTED)
            gone = await self._store.reconcile(host.uuid, seen, complete=True)
            await self._forget(source, host, gone)

    def _listing(self, host: HostRecord, source: HostSource) -> asyncio.Future[list[SeenVm]]:
        # A listing that timed out keeps its pool thread until libvirt gives up (keepalive,
        # ssh); later syncs wait on that same listing instead of stacking more stuck threads.
        pending = self._pending_lists.get(host.uuid)
        if pending is None or pending.done():
            pending = asyncio.ensure_future(source.list_vms())
            pending.add_done_callback(_consume_exception)
            self._pending_lists[host.uuid] = pending
        return pending

    # --- lifecycle events --------------------------------------------------------------------

    async def watch_all(self) -> None:
        """Make sure every host has a live event subscription (a dead one is replaced)."""
        for host in list(self._store.hosts.values()):
            if self.owns(host.uuid):
                await self.watch(host)

    async def watch(self, host: HostRecord) -> None:
        """Make sure ``host`` has a live event subscription; a host that refuses is retried at
        the next resync."""
        if host.uuid not in self._store.hosts:
            return  # deleted meanwhile
        watcher = self._watchers.get(host.uuid)
        if watcher is not None and watcher.alive:
            return
        if watcher is not None:
            await watcher.aclose()
            self._watchers.pop(host.uuid, None)
        try:
            watcher = await asyncio.wait_for(
                self.source(host).watch(
                    lambda vm_uuid, what: self._on_change(host.uuid, vm_uuid, what)),
                LIST_TIMEOUT)
        except (SourceError, TimeoutError) as exc:
            log.info("no lifecycle events from %s for now: %s", host.uri,
                     getattr(exc, "message", None) or "timed out")
            return
        if host.uuid in self._store.hosts:
            self._watchers[host.uuid] = watcher
        else:
            await watcher.aclose()  # deleted meanwhile

    def _on_change(self, host_uuid: str, vm_uuid: str, what: str) -> None:
        log.debug("VM %s on host %s: %s", vm_uuid, host_uuid, what)
        if not self.owns(host_uuid):
            return  # its lease ran out unrenewed: the host's writes are a peer's now
        task = asyncio.create_task(self._refresh_vm(host_uuid, vm_uuid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh_vm(self, host_uuid: str, vm_uuid: str) -> None:
        """Re-read one VM after a lifecycle event."""
        host = self._store.hosts.get(host_uuid)
        if host is None:
            return
        async with self._lock_for(host_uuid):
            if host_uuid not in self._store.hosts:
                return  # deleted while waiting for the lock
            source = self.source(host)
            try:
                seen = await source.vm(vm_uuid)
            except NoSuchVm:
                await self._forget(source, host,
                                   await self._store.remove_vms(host_uuid, [vm_uuid]))
                return
            except SourceError as exc:
                log.debug("cannot re-read VM %s on %s: %s", vm_uuid, host.uri, exc.message)
                return  # the next resync sorts it out
            await self._store.reconcile(host_uuid, [seen], complete=False)

    # --- helpers -----------------------------------------------------------------------------

    def _lock_for(self, host_uuid: str) -> asyncio.Lock:
        lock = self._host_locks.get(host_uuid)
        if lock is None:
            lock = self._host_locks[host_uuid] = asyncio.Lock()
        return lock

    async def _forget(self, source: HostSource, host: HostRecord, gone: list[VmRecord]) -> None:
        for vm in gone:
            log.debug("VM %s (%s) is gone from host %s", vm.name, vm.uuid, host.name)
            await self._agents.forget(source.agent_target(vm))
