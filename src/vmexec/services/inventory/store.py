"""The inventory's state: hosts and VMs in the database, with an in-memory view of them.

The database is the truth shared by every node on it; memory is this node's view, for lookups
and queries without I/O. Every write goes to the database first (as an upsert where two nodes
may write the same row: a VM seen by both, a host added on both) and is applied to memory once
it committed; :meth:`InventoryStore.load` re-reads both tables, which a node does when a peer
announces a change (PostgreSQL ``NOTIFY``, see :mod:`.listener`), when a lookup misses, and at
every periodic resync. On PostgreSQL every write transaction sends that announcement (the
notification leaves on commit), so peers' views follow within a round trip.

Each host has one owning node (a lease on its row, :meth:`claim_hosts`); only the owner lists
the host and writes its VMs, so writes of one host are serialised by that node's per-host lock.
The hosts are shared out among the live nodes (those with a fresh heartbeat row): a node takes
free hosts only up to its share, ``ceil(hosts / live nodes)``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import utcnow
from vmexec.db.models_inventory import HostRow, NodeHeartbeatRow, VmRow
from vmexec.db.upsert import insert_for, is_postgresql
from vmexec.services.errors import HostExists
from vmexec.services.inventory.records import HostRecord, VmRecord
from vmexec.services.inventory.source import SeenVm
from vmexec.zstack.inventories import VmState

#: The PostgreSQL channel inventory changes are announced on (payload empty), and answers to
#: resync requests (payload ``resynced REQUEST NODE``).
CHANNEL = "vmexec_inventory"
#: The channel a node that missed a lookup asks the owners of its peers' hosts to resync on
#: (payload: the request's id).
RESYNC_CHANNEL = "vmexec_inventory_resync"
#: The start of an answer's payload on :data:`CHANNEL`.
RESYNCED = "resynced"

#: Reads a load makes at most while this node's own writes keep landing.
_READ_ATTEMPTS = 5
#: Columns set by API calls only, never by a resync.
_API_COLUMNS = frozenset({"qga_enabled", "owner_account_uuid"})
#: Columns a resync never overwrites in an existing row: the API's, and the first-seen date
#: (a peer may have seen the VM first).
_KEPT_ON_UPSERT = _API_COLUMNS | {"uuid", "create_date"}


async def announce(session: AsyncSession) -> None:
    """Tell the other nodes the inventory changed, when this transaction commits (PostgreSQL;
    SQLite serves a single node and has no one to tell)."""
    if is_postgresql(session):
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


@dataclass(frozen=True, slots=True)
class HostClaim:
    """What a claim found: the hosts the node owns now, and its share of all hosts,
    ``ceil(hosts / live_nodes)`` (``live_nodes`` counts it too). A node owning more than its
    share (it was alone, or added hosts) releases the surplus (:meth:`.release_host`) for the
    nodes below theirs to take; the shares add up to at least the hosts, so every host has a
    taker."""

    owned: set[str]
    share: int
    live_nodes: int


class InventoryStore:
    """The hosts and VMs, by UUID; see the module docstring. Methods raise what the database
    raises (nothing changes in memory then)."""

    def __init__(self, db: async_sessionmaker[AsyncSession]) -> None:
        self._db = db
        self.hosts: dict[str, HostRecord] = {}
        self.vms: dict[str, VmRecord] = {}
        self._load_lock = asyncio.Lock()
        self._loads = 0
        #: Bumped by every write of this node to memory (after its commit).
        self._writes = 0

    async def load(self) -> None:
        """Read both tables into memory (the view of this node). Loads are serialised, and a
        load asked for while one runs waits for the next one, which sees every commit made
        before it was asked for. Raises what the database raises."""
        # _loads is odd while a load runs: the first load to start after this call is the
        # one that ends at `first_after + 2`.
        first_after = self._loads + self._loads % 2
        async with self._load_lock:
            if self._loads >= first_after + 2:
                return  # a load that started after this call was made has finished
            self._loads += 1
            try:
                for _attempt in range(_READ_ATTEMPTS):
                    writes = self._writes
                    async with self._db() as session:
                        hosts = (await session.scalars(select(HostRow))).all()
                        vms = (await session.scalars(select(VmRow))).all()
                    # A write of this node that reached memory while this read ran may not be
                    # in what was read (read before its commit): read again, it is now.
                    if self._writes == writes:
                        break
                self.hosts = {row.uuid: HostRecord.of(row) for row in hosts}
                self.vms = {row.uuid: VmRecord.of(row) for row in vms}
            finally:
                self._loads += 1

    def vms_of(self, host_uuid: str) -> list[VmRecord]:
        return [vm for vm in self.vms.values() if vm.host_uuid == host_uuid]

    async def add_host(self, host: HostRecord, *, owner_node: str, lease: float) -> None:
        """Insert ``host``, owned by ``owner_node`` for ``lease`` seconds.

        Raises:
            HostExists: a host with its URI or UUID is in the database (added on any node).
        """
        columns = {c.key: getattr(host.row(), c.key) for c in HostRow.__table__.columns
                   if c.key not in ("owner_node", "lease_expires")}
        async with self._db() as session, session.begin():
            inserted = await session.execute(
                insert_for(session, HostRow).values(
                    **columns, owner_node=owner_node,
                    lease_expires=utcnow() + timedelta(seconds=lease))
                .on_conflict_do_nothing().returning(HostRow.uuid))
            if inserted.first() is None:
                raise await self._existing(session, host)
            await announce(session)
        self.hosts[host.uuid] = host
        self._writes += 1

    async def find_host_conflict(self, uri: str, uuid: str | None) -> HostExists | None:
        """Why adding a host of ``uri`` (and ``uuid``) would fail, reading the database: a
        peer may have added it a moment ago."""
        async with self._db() as session:
            return await self._conflict(session, uri, uuid)

    @staticmethod
    async def _conflict(session: AsyncSession, uri: str, uuid: str | None) -> HostExists | None:
        found = (await session.execute(
            select(HostRow.uuid, HostRow.uri).where(
                or_(HostRow.uri == uri, HostRow.uuid == (uuid or ""))))).first()
        if found is None:
            return None
        if found.uri == uri:
            return HostExists(f"a host with the URI {uri} is already added (host {found.uuid})")
        return HostExists(f"a host with the UUID {uuid} exists")

    async def _existing(self, session: AsyncSession, host: HostRecord) -> HostExists:
        return (await self._conflict(session, host.uri, host.uuid)
                or HostExists(f"a host with the URI {host.uri} is already added"))

    async def delete_host(self, host_uuid: str) -> list[VmRecord]:
        """Remove the host and its VMs; returns the VMs removed."""
        async with self._db() as session, session.begin():
            await session.execute(delete(VmRow).where(VmRow.host_uuid == host_uuid))
            await session.execute(delete(HostRow).where(HostRow.uuid == host_uuid))
            await announce(session)
        gone = self.vms_of(host_uuid)
        for vm in gone:
            del self.vms[vm.uuid]
        self.hosts.pop(host_uuid, None)
        self._writes += 1
        return gone

    # --- host leases -------------------------------------------------------------------------

    async def claim_hosts(self, node: str, lease: float) -> HostClaim:
        """Renew ``node``'s heartbeat and host leases, and take hosts nobody holds (never
        owned, released, or its lease expired) while ``node`` owns fewer than its share; see
        :class:`HostClaim`. One transaction; the take is an atomic UPDATE that re-checks the
        row it locks, so two nodes never both get a host."""
        now = utcnow()
        until = now + timedelta(seconds=lease)
        async with self._db() as session, session.begin():
            # The heartbeat and the host leases end at the same instant: a node that died
            # stops counting as live exactly when its hosts become free to take.
            await session.execute(
                insert_for(session, NodeHeartbeatRow).values(node_id=node, lease_expires=until)
                .on_conflict_do_update(index_elements=[NodeHeartbeatRow.node_id],
                                       set_={"lease_expires": until}))
            await session.execute(delete(NodeHeartbeatRow).where(
                NodeHeartbeatRow.lease_expires < now))
            counts = (await session.execute(select(
                select(func.count()).select_from(NodeHeartbeatRow).scalar_subquery(),
                select(func.count()).select_from(HostRow).scalar_subquery()))).one()
            live, hosts = int(counts[0]), int(counts[1])
            share = math.ceil(hosts / max(live, 1))
            owned = set((await session.scalars(
                update(HostRow).where(HostRow.owner_node == node)
                .values(lease_expires=until).returning(HostRow.uuid))).all())
            if len(owned) < share:
                free = or_(HostRow.owner_node.is_(None), HostRow.lease_expires.is_(None),
                           HostRow.lease_expires < now)
                candidates = (select(HostRow.uuid).where(free).order_by(HostRow.uuid)
                              .limit(share - len(owned)).with_for_update(skip_locked=True))
                # The outer WHERE repeats `free`: PostgreSQL re-evaluates it on the row
                # version it locks, so a host a peer took meanwhile is left out.
                taken = await session.scalars(
                    update(HostRow).where(HostRow.uuid.in_(candidates), free)
                    .values(owner_node=node, lease_expires=until).returning(HostRow.uuid))
                owned |= set(taken.all())
            return HostClaim(owned=owned, share=share, live_nodes=live)

    async def release_host(self, node: str, host_uuid: str) -> bool:
        """Give up ``node``'s lease on one host (it owns more than its share): a peer below
        its share takes it at its next claim. Whether ``node`` held it."""
        async with self._db() as session, session.begin():
            result = await session.execute(
                update(HostRow).where(HostRow.uuid == host_uuid, HostRow.owner_node == node)
                .values(owner_node=None, lease_expires=None))
            return bool(getattr(result, "rowcount", 0))

    async def peer_owners(self, node: str) -> set[str]:
        """The other nodes that hold a live lease on a host now."""
        async with self._db() as session:
            owners = await session.scalars(
                select(HostRow.owner_node).distinct()
                .where(HostRow.owner_node.is_not(None), HostRow.owner_node != node,
                       HostRow.lease_expires >= utcnow()))
            return {owner for owner in owners if owner is not None}

    async def notify(self, channel: str, payload: str) -> None:
        """Send one notification (PostgreSQL only: nobody listens on SQLite)."""
        async with self._db() as session, session.begin():
            if is_postgresql(session):
                await session.execute(text("SELECT pg_notify(:channel, :payload)"),
                                      {"channel": channel, "payload": payload})

    async def release_hosts(self, node: str) -> None:
        """End ``node``'s leases and heartbeat (it shuts down): its peers count one node less
        and take its hosts at their next claim."""
        async with self._db() as session, session.begin():
            await session.execute(update(HostRow).where(HostRow.owner_node == node)
                                  .values(owner_node=None, lease_expires=None))
            await session.execute(delete(NodeHeartbeatRow).where(
                NodeHeartbeatRow.node_id == node))

    # --- writes of the owner, and of the API ---------------------------------------------------

    async def set_host_status(self, host_uuid: str, status: str) -> None:
        host = self.hosts.get(host_uuid)
        if host is None or host.status == status:
            return
        now = utcnow().replace(microsecond=0)
        async with self._db() as session, session.begin():
            await session.execute(update(HostRow).where(HostRow.uuid == host_uuid)
                                  .values(status=status, last_op_date=now))
            await announce(session)
        host.status, host.last_op_date = status, now
        self._writes += 1

    async def set_qga(self, vm_uuid: str, enable: bool) -> None:
        async with self._db() as session, session.begin():
            await session.execute(
                update(VmRow).where(VmRow.uuid == vm_uuid).values(qga_enabled=enable))
            await announce(session)
        vm = self.vms.get(vm_uuid)
        if vm is not None:
            vm.qga_enabled = enable
        self._writes += 1

    async def set_owner(self, vm_uuid: str, owner_account_uuid: str | None) -> None:
        async with self._db() as session, session.begin():
            await session.execute(update(VmRow).where(VmRow.uuid == vm_uuid)
                                  .values(owner_account_uuid=owner_account_uuid))
            await announce(session)
        vm = self.vms.get(vm_uuid)
        if vm is not None:
            vm.owner_account_uuid = owner_account_uuid
        self._writes += 1

    async def disown(self, account_uuid: str) -> None:
        """Give every VM of ``account_uuid`` back to the ``admin`` account."""
        async with self._db() as session, session.begin():
            await session.execute(update(VmRow).where(VmRow.owner_account_uuid == account_uuid)
                                  .values(owner_account_uuid=None))
            await announce(session)
        for vm in self.vms.values():
            if vm.owner_account_uuid == account_uuid:
                vm.owner_account_uuid = None
        self._writes += 1

    async def mark_unknown(self, host_uuid: str) -> None:
        """The host cannot be reached: its VMs are in an unknown state (as ZStack has it)."""
        stale = [vm for vm in self.vms_of(host_uuid) if vm.state != VmState.UNKNOWN]
        if not stale:
            return
        now = utcnow().replace(microsecond=0)
        async with self._db() as session, session.begin():
            await session.execute(
                update(VmRow).where(VmRow.uuid.in_([vm.uuid for vm in stale]))
                .values(state=VmState.UNKNOWN, last_op_date=now))
            await announce(session)
        for vm in stale:
            vm.state, vm.last_op_date = VmState.UNKNOWN, now
        self._writes += 1

    async def reconcile(self, host_uuid: str, seen: Sequence[SeenVm], *,
                        complete: bool) -> list[VmRecord]:
        """Bring the VMs of the host in line with what it reports; returns the VMs removed.

        ``complete``: ``seen`` is everything on the host, so VMs not in it are removed.
        A VM first seen gets ``createDate`` now; a state change (or a move from another host)
        sets ``lastOpDate``. New and changed VMs are upserted: a peer may have inserted the
        same VM a moment ago (it held the host before this node), and that is agreement, not
        an error.
        """
        now = utcnow().replace(microsecond=0)
        written: list[VmRecord] = []
        for item in seen:
            old = self.vms.get(item.uuid)
            if old is None:
                written.append(VmRecord(
                    uuid=item.uuid, host_uuid=host_uuid, last_host_uuid=host_uuid,
                    name=item.name, state=item.state, platform=item.platform,
                    cpu_num=item.cpu_num, memory_size=item.memory_size,
                    has_agent_channel=item.has_agent_channel, qga_enabled=True,
                    create_date=now, last_op_date=now, description=item.description,
                    architecture=item.architecture, socket_path=item.socket_path))
                continue
            new = replace(
                old, host_uuid=host_uuid, name=item.name, state=item.state,
                platform=item.platform, cpu_num=item.cpu_num, memory_size=item.memory_size,
                has_agent_channel=item.has_agent_channel, description=item.description,
                architecture=item.architecture, socket_path=item.socket_path)
            if old.host_uuid != host_uuid:
                new.last_host_uuid = old.host_uuid  # the domain moved (migrated) here
            if new.state != old.state or new.host_uuid != old.host_uuid:
                new.last_op_date = now
            if new != old:
                written.append(new)
        gone: list[str] = []
        if complete:
            present = {item.uuid for item in seen}
            gone = [vm.uuid for vm in self.vms_of(host_uuid) if vm.uuid not in present]
        if not (written or gone):
            return []
        stored: list[VmRow] = []
        async with self._db() as session, session.begin():
            if written:
                statement = insert_for(session, VmRow)
                # Not what only the API sets (the agent switch, the owner: SetVmQga or
                # ChangeResourceOwner may change it while this runs), nor the first-seen date.
                statement = statement.on_conflict_do_update(
                    index_elements=[VmRow.uuid],
                    set_={name: statement.excluded[name] for name in written[0].columns()
                          if name not in _KEPT_ON_UPSERT})
                await session.execute(statement, [vm.columns() for vm in written])
                stored = list((await session.scalars(
                    select(VmRow).where(VmRow.uuid.in_([vm.uuid for vm in written])))).all())
            if gone:
                # Only while still on this host: a VM that moved to another is its owner's.
                await session.execute(delete(VmRow).where(VmRow.uuid.in_(gone),
                                                          VmRow.host_uuid == host_uuid))
            await announce(session)
        for row in stored:
            self.vms[row.uuid] = VmRecord.of(row)
        self._writes += 1
        return [vm for uuid in gone if (vm := self.vms.pop(uuid, None)) is not None]

    async def remove_vms(self, host_uuid: str, uuids: Iterable[str]) -> list[VmRecord]:
        """Remove these VMs if they are on the host; returns the VMs removed."""
        gone = [u for u in uuids if (vm := self.vms.get(u)) and vm.host_uuid == host_uuid]
        if not gone:
            return []
        async with self._db() as session, session.begin():
            await session.execute(delete(VmRow).where(VmRow.uuid.in_(gone),
                                                      VmRow.host_uuid == host_uuid))
            await announce(session)
        self._writes += 1
        return [vm for uuid in gone if (vm := self.vms.pop(uuid, None)) is not None]
