"""Host administration: AddKVMHost, QueryHost, DeleteHost, and the local libvirt registered
on a server's first start."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from vmexec.db.models import utcnow
from vmexec.services.errors import HostExists, HostUnreachable, InvalidValue
from vmexec.services.inventory.records import HostRecord, query_reply, to_wire
from vmexec.services.inventory.source import HostSource, SourceError, SourceFactory
from vmexec.services.inventory.store import InventoryStore
from vmexec.services.inventory.sync import Sync
from vmexec.services.queries import QueryRunner
from vmexec.zstack.classes import KVM_HOST_INVENTORY
from vmexec.zstack.ids import new_uuid, normalize_uuid
from vmexec.zstack.inventories import HostState, HostStatus
from vmexec.zstack.query import Query

log = logging.getLogger(__name__)

#: Seconds AddKVMHost waits for the new host to answer.
CONNECT_TIMEOUT = 20.0


class HostAdmin:
    """Adds, lists and deletes the hosts of ``store``; ``sync`` keeps them current."""

    def __init__(self, store: InventoryStore, sync: Sync, sources: SourceFactory,
                 queries: QueryRunner) -> None:
        self._store = store
        self._sync = sync
        self._open_source = sources
        self._queries = queries

    async def register_local(self, uri: str) -> None:
        """Register ``uri`` as the host ``localhost`` if it answers; never raises for a host
        that does not (a server without a local libvirt starts all the same)."""
        try:
            source = self._open_source(uri)
        except InvalidValue as exc:  # malformed, or refused by the host URI policy
            log.warning("local libvirt %s is not a usable URI, not registered: %s", uri, exc)
            return
        try:
            await self._probe(source)
        except SourceError as exc:
            log.info("local libvirt %s does not answer, not registered: %s", uri, exc.message)
            await source.aclose()
            return
        try:
            await self._insert(source, name="localhost", uri=uri, management_ip="127.0.0.1")
        except HostExists:
            # Another node on the same database registered it first: it is there, as wanted.
            log.info("the local libvirt %s was registered by another node", uri)
            return
        log.info("registered the local libvirt %s as a host", uri)

    async def add(self, *, name: str, uri: str, management_ip: str | None = None,
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
        # Another node may have added it a moment ago (before this node heard of it).
        conflict = await self._store.find_host_conflict(
            uri, normalize_uuid(host_uuid) if host_uuid else None)
        if conflict is not None:
            raise conflict
        source = self._open_source(uri)
        try:
            await self._probe(source)
        except SourceError as exc:
            await source.aclose()
            raise HostUnreachable(f"cannot connect to host {uri}: {exc.message}") from None
        host = await self._insert(
            source, name=name, uri=uri, management_ip=management_ip, username=username,
            ssh_port=ssh_port, cluster_uuid=cluster_uuid, description=description,
            host_uuid=normalize_uuid(host_uuid) if host_uuid else None)
        await self._sync.sync_host(host)
        await self._sync.watch(host)
        return to_wire(self._store.hosts[host.uuid].values())

    async def query(self, query: Query, uuid: str | None = None) -> dict[str, Any]:
        """QueryHost's reply: ``inventories``, ``total`` when asked, and ``schema``."""
        if uuid is not None:
            query = query.with_uuid(normalize_uuid(uuid))
        hosts = sorted(self._store.hosts.values(), key=lambda h: (h.create_date, h.name))
        result = await self._queries.evaluate(query, [h.values() for h in hosts])
        return query_reply(query, result, KVM_HOST_INVENTORY)

    async def delete(self, host_uuid: str) -> None:
        """DeleteHost: forget the host and its VMs (nothing is done to the VMs themselves).

        Deleting an unknown host succeeds, as ZStack's deletes are idempotent.
        """
        host = self._store.hosts.get(normalize_uuid(host_uuid))
        if host is None:
            await self._sync.refresh()  # it may have been added on another node a moment ago
            host = self._store.hosts.get(normalize_uuid(host_uuid))
        if host is None:
            return
        gone = await self._sync.remove_host(host)
        log.info("deleted host %s (%s) and its %d VMs", host.name, host.uri, len(gone))

    @staticmethod
    async def _probe(source: HostSource) -> None:
        try:
            await asyncio.wait_for(source.probe(), CONNECT_TIMEOUT)
        except TimeoutError:
            raise SourceError(f"no answer within {CONNECT_TIMEOUT:g} s") from None

    async def _insert(self, source: HostSource, *, name: str, uri: str,
                      management_ip: str | None = None, username: str | None = None,
                      ssh_port: int | None = None, cluster_uuid: str | None = None,
                      description: str | None = None,
                      host_uuid: str | None = None) -> HostRecord:
        now = utcnow().replace(microsecond=0)
        host = HostRecord(
            uuid=host_uuid or new_uuid(), name=name, uri=uri, kind=source.kind,
            state=HostState.ENABLED, status=HostStatus.CONNECTED, create_date=now, last_op_date=now,
            description=description, management_ip=management_ip, username=username,
            ssh_port=ssh_port, cluster_uuid=cluster_uuid)
        self._sync.adopt(host.uuid, source)
        try:
            # The node that adds a host owns it first (it has just reached it).
            await self._store.add_host(host, owner_node=self._sync.node_id,
                                       lease=self._sync.lease)
        except BaseException:
            self._sync.abandon(host.uuid)
            await source.aclose()
            raise
        self._sync.take(host.uuid)
        return host
