"""The inventory's state: hosts and VMs in memory, written through to the database.

Every change is written to the database first and applied to memory only once that committed,
so a failed write leaves both as they were and the next resync computes the change again.
Callers serialise changes per host (the inventory holds a lock per host while it reconciles).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.db.models import utcnow
from vmexec.db.models_inventory import HostRow, VmRow
from vmexec.services.inventory.records import HostRecord, VmRecord
from vmexec.services.inventory.source import SeenVm
from vmexec.zstack.inventories import VmState

#: Columns set by API calls only, never by a resync.
_API_COLUMNS = frozenset({"qga_enabled", "owner_account_uuid"})


class InventoryStore:
    """The hosts and VMs, by UUID; see the module docstring. Methods raise what the database
    raises (nothing changes in memory then)."""

    def __init__(self, db: async_sessionmaker[AsyncSession]) -> None:
        self._db = db
        self.hosts: dict[str, HostRecord] = {}
        self.vms: dict[str, VmRecord] = {}

    async def load(self) -> None:
        """Read both tables into memory. Raises what the database raises."""
        async with self._db() as session:
            hosts = (await session.scalars(select(HostRow))).all()
            vms = (await session.scalars(select(VmRow))).all()
        self.hosts = {row.uuid: HostRecord.of(row) for row in hosts}
        self.vms = {row.uuid: VmRecord.of(row) for row in vms}

    def vms_of(self, host_uuid: str) -> list[VmRecord]:
        return [vm for vm in self.vms.values() if vm.host_uuid == host_uuid]

    async def add_host(self, host: HostRecord) -> None:
        async with self._db() as session, session.begin():
            session.add(host.row())
        self.hosts[host.uuid] = host

    async def delete_host(self, host_uuid: str) -> list[VmRecord]:
        """Remove the host and its VMs; returns the VMs removed."""
        async with self._db() as session, session.begin():
            await session.execute(delete(VmRow).where(VmRow.host_uuid == host_uuid))
            await session.execute(delete(HostRow).where(HostRow.uuid == host_uuid))
        gone = self.vms_of(host_uuid)
        for vm in gone:
            del self.vms[vm.uuid]
        self.hosts.pop(host_uuid, None)
        return gone

    async def set_host_status(self, host_uuid: str, status: str) -> None:
        host = self.hosts.get(host_uuid)
        if host is None or host.status == status:
            return
        now = utcnow().replace(microsecond=0)
        async with self._db() as session, session.begin():
            await session.execute(update(HostRow).where(HostRow.uuid == host_uuid)
                                  .values(status=status, last_op_date=now))
        host.status, host.last_op_date = status, now

    async def set_qga(self, vm_uuid: str, enable: bool) -> None:
        async with self._db() as session, session.begin():
            await session.execute(
                update(VmRow).where(VmRow.uuid == vm_uuid).values(qga_enabled=enable))
        vm = self.vms.get(vm_uuid)
        if vm is not None:
            vm.qga_enabled = enable

    async def set_owner(self, vm_uuid: str, owner_account_uuid: str | None) -> None:
        async with self._db() as session, session.begin():
            await session.execute(update(VmRow).where(VmRow.uuid == vm_uuid)
                                  .values(owner_account_uuid=owner_account_uuid))
        vm = self.vms.get(vm_uuid)
        if vm is not None:
            vm.owner_account_uuid = owner_account_uuid

    async def disown(self, account_uuid: str) -> None:
        """Give every VM of ``account_uuid`` back to the ``admin`` account."""
        async with self._db() as session, session.begin():
            await session.execute(update(VmRow).where(VmRow.owner_account_uuid == account_uuid)
                                  .values(owner_account_uuid=None))
        for vm in self.vms.values():
            if vm.owner_account_uuid == account_uuid:
                vm.owner_account_uuid = None

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
        for vm in stale:
            vm.state, vm.last_op_date = VmState.UNKNOWN, now

    async def reconcile(self, host_uuid: str, seen: Sequence[SeenVm], *,
                        complete: bool) -> list[VmRecord]:
        """Bring the VMs of the host in line with what it reports; returns the VMs removed.

        ``complete``: ``seen`` is everything on the host, so VMs not in it are removed.
        A VM first seen gets ``createDate`` now; a state change (or a move from another host)
        sets ``lastOpDate``.
        """
        now = utcnow().replace(microsecond=0)
        added: list[VmRecord] = []
        changed: list[VmRecord] = []
        for item in seen:
            old = self.vms.get(item.uuid)
            if old is None:
                added.append(VmRecord(
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
                changed.append(new)
        gone: list[str] = []
        if complete:
            present = {item.uuid for item in seen}
            gone = [vm.uuid for vm in self.vms_of(host_uuid) if vm.uuid not in present]
        if not (added or changed or gone):
            return []
        async with self._db() as session, session.begin():
            for vm in added:
                session.add(VmRow(**vm.columns()))
            for vm in changed:
                # Not what only the API sets (the agent switch, the owner): SetVmQga or
                # ChangeResourceOwner may change it while this runs.
                columns = {k: v for k, v in vm.columns().items() if k not in _API_COLUMNS}
                await session.execute(
                    update(VmRow).where(VmRow.uuid == vm.uuid).values(**columns))
            if gone:
                await session.execute(delete(VmRow).where(VmRow.uuid.in_(gone)))
        for vm in (*added, *changed):
            current = self.vms.get(vm.uuid)
            if current is not None:
                vm.qga_enabled = current.qga_enabled
                vm.owner_account_uuid = current.owner_account_uuid
            self.vms[vm.uuid] = vm
        return [self.vms.pop(uuid) for uuid in gone]

    async def remove_vms(self, host_uuid: str, uuids: Iterable[str]) -> list[VmRecord]:
        """Remove these VMs if they are on the host; returns the VMs removed."""
        gone = [u for u in uuids if (vm := self.vms.get(u)) and vm.host_uuid == host_uuid]
        if not gone:
            return []
        async with self._db() as session, session.begin():
            await session.execute(delete(VmRow).where(VmRow.uuid.in_(gone)))
        return [self.vms.pop(uuid) for uuid in gone]
