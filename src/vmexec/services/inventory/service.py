"""The inventory service routes use: :class:`Inventory`, a façade over the package's parts."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.agent.directory import AgentDirectory
from vmexec.services.inventory.hosts import HostAdmin
from vmexec.services.inventory.listener import ChangeListener, listen_dsn
from vmexec.services.inventory.peers import PeerResyncs
from vmexec.services.inventory.source import SourceFactory
from vmexec.services.inventory.store import InventoryStore
from vmexec.services.inventory.sync import (
    DEFAULT_CONNECTION_IDLE,
    DEFAULT_HOST_LEASE,
    DEFAULT_RESYNC_INTERVAL,
    Sync,
)
from vmexec.services.inventory.visibility import Viewer
from vmexec.services.inventory.vms import VmLookups, VmRef
from vmexec.services.queries import QueryRunner
from vmexec.zstack.query import Query

log = logging.getLogger(__name__)


class HostStatusView(NamedTuple):
    uuid: str
    name: str
    #: ZStack's ``status``: Connected, Disconnected, Connecting.
    status: str


class Inventory:
    """Hosts and VMs, kept current (see :mod:`vmexec.services.inventory`).

    ``sources`` opens the :class:`~.source.HostSource` of a host URI; ``local_host_uri`` is
    registered as the host ``localhost`` on a first start (an empty database) if it answers.
    Methods raise :mod:`vmexec.services.errors` for the client's mistakes (unknown VM or host,
    bad host address) as documented on each.
    """

    def __init__(self, db: async_sessionmaker[AsyncSession], sources: SourceFactory,
                 agents: AgentDirectory, *, local_host_uri: str | None = None,
                 resync_interval: float = DEFAULT_RESYNC_INTERVAL, node_id: str | None = None,
                 host_lease: float = DEFAULT_HOST_LEASE,
                 connection_idle: float = DEFAULT_CONNECTION_IDLE) -> None:
        self._local_host_uri = local_host_uri
        self._store = InventoryStore(db)
        self._sync = Sync(self._store, sources, agents, interval=resync_interval,
                          node_id=node_id, lease=host_lease, connection_idle=connection_idle)
        engine = db.kw.get("bind")
        dsn = listen_dsn(engine) if engine is not None else None
        #: Peers' changes, heard on PostgreSQL; ``None`` on SQLite (a single node).
        self._listener: ChangeListener | None = None
        if dsn:
            peers = self._sync.peers = PeerResyncs(
                self._store, self._sync.node_id, resync_after=self._sync.sync_after,
                refresh=self._sync.refresh, owns_hosts=lambda: self._sync.owned_count() > 0)
            self._listener = ChangeListener(dsn, self._sync.refresh,
                                            on_resync_request=peers.on_request,
                                            on_resynced=peers.on_answer)
        self._queries = QueryRunner()
        self._hosts = HostAdmin(self._store, self._sync, sources, self._queries)
        self._vms = VmLookups(self._store, self._sync, agents, self._queries)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the inventory, register the local host on a first start, sync, keep current.

        Never fails for an unreachable host: it is marked Disconnected and retried.
        Raises what the database raises.
        """
        if self._listener is not None:
            # Listening before the first read: no change made after that read is missed.
            await self._listener.start()
            log.info("inventory shared with the other nodes on this database as node %s "
                     "(changes heard through LISTEN/NOTIFY)", self._sync.node_id)
        else:
            log.info("inventory on SQLite: this server is the only node on its database file")
        await self._store.load()
        if not self._store.hosts and self._local_host_uri is not None:
            await self._hosts.register_local(self._local_host_uri)
        await self._sync.start()

    async def aclose(self) -> None:
        """Stop keeping the inventory current, hand this node's hosts to its peers; never
        raises."""
        if self._listener is not None:
            await self._listener.aclose()
        await self._sync.aclose()
        self._queries.close()

    async def sync(self) -> None:
        """Resync every host now (waits for a resync already running, then runs another)."""
        await self._sync.sync()

    # --- counts, for metrics and /health (from memory: no host is asked) ------------------

    def host_counts(self) -> dict[str, int]:
        """Hosts by connection status (``Connected``, ``Disconnected``, ``Connecting``)."""
        return dict(Counter(host.status for host in self._store.hosts.values()))

    def vm_counts(self) -> dict[str, int]:
        """VMs by state (``Running``, ``Stopped``, ``Unknown``, ...)."""
        return dict(Counter(vm.state for vm in self._store.vms.values()))

    @property
    def node_id(self) -> str:
        """This node's name on the hosts it owns."""
        return self._sync.node_id

    def owned_host_count(self) -> int:
        """How many hosts this node owns (lists and watches) now."""
        return self._sync.owned_count()

    def live_nodes(self) -> int:
        """Nodes sharing the hosts out, this one included, as of its last lease renewal."""
        return self._sync.live_nodes

    def libvirt_connections(self) -> int:
        """How many libvirt hosts this node has its shared connection open to now (event
        subscriptions, one per owned libvirt host, come on top)."""
        return self._sync.libvirt_connections()

    @property
    def host_listings(self) -> int:
        """How many times this node listed a host's VMs (its share of the resyncs)."""
        return self._sync.listings

    def host_statuses(self) -> list[HostStatusView]:
        """Every host's name and connection status, as last seen by the inventory."""
        return sorted((HostStatusView(h.uuid, h.name, h.status)
                       for h in self._store.hosts.values()), key=lambda h: (h.name, h.uuid))

    # --- VMs (see .vms) ------------------------------------------------------------------------

    async def resolve(self, vm_uuid: str, *, visible_to: Viewer | None = None) -> VmRef:
        """The VM's agent target and state, resyncing once if the VM is not known yet.

        ``visible_to``: the account the request acts as (:class:`Viewer`); a VM it does not
        see is not found, exactly as an unknown UUID. ``None`` only for vmexec's own work
        (resuming a job after a restart), never for a request.

        Raises:
            VmNotFound: no such VM on any host, or not visible to ``visible_to``.
        """
        return await self._vms.resolve(vm_uuid, visible_to)

    def visible_vm_uuids(self, viewer: Viewer) -> frozenset[str] | None:
        """The UUIDs of the VMs ``viewer`` sees now; ``None`` for an admin (every VM): to
        filter records that name VMs (``WHERE vm_uuid IN (...)`` unless ``None``)."""
        return self._vms.visible_uuids(viewer)

    async def change_owner(self, vm_uuid: str, account_uuid: str | None) -> None:
        """ChangeResourceOwner: ``account_uuid`` owns the VM from now on (``None``: the
        ``admin`` account); kept across resyncs and restarts.

        Raises:
            VmNotFound: no such VM.
        """
        await self._vms.change_owner(vm_uuid, account_uuid)

    async def query_owners(self, query: Query, *, visible_to: Viewer,
                           admin_account_uuid: str) -> dict[str, Any]:
        """QueryAccountResourceRef's reply: which account owns each VM ``visible_to`` sees
        (VMs without an owner are ``admin_account_uuid``'s)."""
        return await self._vms.query_owners(query, visible_to, admin_account_uuid)

    async def disown(self, account_uuid: str) -> None:
        """Give the VMs of ``account_uuid`` (being deleted) back to the ``admin`` account."""
        await self._store.disown(account_uuid)

    async def inventory(self, vm_uuid: str) -> dict[str, Any]:
        """The VM's VmInstanceInventory JSON.

        Raises:
            VmNotFound: no such VM.
        """
        return await self._vms.inventory(vm_uuid)

    async def query_vms(self, query: Query, uuid: str | None = None, *,
                        visible_to: Viewer | None = None) -> dict[str, Any]:
        """QueryVmInstance's reply: ``inventories``, ``total`` when asked, and ``schema``;
        only the VMs ``visible_to`` sees (``None``: all)."""
        return await self._vms.query(query, uuid, visible_to)

    async def get_qga(self, vm_uuid: str, *, visible_to: Viewer | None = None) -> bool:
        """Whether vmexec may use the VM's guest agent (GetVmQga).

        Raises:
            VmNotFound: no such VM (or not visible to ``visible_to``).
        """
        return await self._vms.get_qga(vm_uuid, visible_to)

    async def set_qga(self, vm_uuid: str, enable: bool) -> None:
        """Allow or forbid using the VM's guest agent (SetVmQga); kept across restarts.

        Raises:
            VmNotFound: no such VM.
        """
        await self._vms.set_qga(vm_uuid, enable)

    async def guest_tools_info(self, vm_uuid: str, *,
                               visible_to: Viewer | None = None) -> dict[str, Any]:
        """GetVmGuestToolsInfo from the live agent (see :meth:`.VmLookups.guest_tools_info`).

        Raises:
            VmNotFound: no such VM (or not visible to ``visible_to``).
        """
        return await self._vms.guest_tools_info(vm_uuid, visible_to)

    # --- hosts (see .hosts) ------------------------------------------------------------------

    async def add_host(self, *, name: str, uri: str, management_ip: str | None = None,
                       username: str | None = None, ssh_port: int | None = None,
                       cluster_uuid: str | None = None, description: str | None = None,
                       host_uuid: str | None = None) -> dict[str, Any]:
        """AddKVMHost: check that ``uri`` answers, register it, discover its VMs; returns the
        HostInventory JSON.

        Raises:
            InvalidValue: the URI is malformed.
            HostExists: the URI is registered already, or the UUID is taken.
            HostUnreachable: the host does not answer (the message says why).
        """
        return await self._hosts.add(
            name=name, uri=uri, management_ip=management_ip, username=username,
            ssh_port=ssh_port, cluster_uuid=cluster_uuid, description=description,
            host_uuid=host_uuid)

    async def query_hosts(self, query: Query, uuid: str | None = None) -> dict[str, Any]:
        """QueryHost's reply: ``inventories``, ``total`` when asked, and ``schema``."""
        return await self._hosts.query(query, uuid)

    async def delete_host(self, host_uuid: str) -> None:
        """DeleteHost: forget the host and its VMs (nothing is done to the VMs themselves).

        Deleting an unknown host succeeds, as ZStack's deletes are idempotent.
        """
        await self._hosts.delete(host_uuid)
