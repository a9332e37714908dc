"""The inventory's in-memory records and their ZStack views (VmInstanceInventory, HostInventory).

A record mirrors one row of ``vms`` / ``hosts``. Its *values* are the ZStack fields with typed
Python values (``datetime`` dates, ``None`` for null), which the query evaluator works on;
:func:`to_wire` turns them into the JSON ZStack clients read (ZStack dates, nulls omitted), and
:func:`query_reply` builds a Query* API's reply from them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vmexec.db.models_inventory import HostRow, VmRow
from vmexec.zstack.classes import schema_map
from vmexec.zstack.dates import format_date
from vmexec.zstack.inventories import HOST_FIELDS, HYPERVISOR_TYPE, VM_INSTANCE_FIELDS, VM_TYPE
from vmexec.zstack.query import Query, QueryResult


@dataclass(slots=True)
class HostRecord:
    uuid: str
    name: str
    uri: str
    kind: str
    state: str
    status: str
    create_date: datetime
    last_op_date: datetime
    description: str | None = None
    management_ip: str | None = None
    username: str | None = None
    ssh_port: int | None = None
    zone_uuid: str | None = None
    cluster_uuid: str | None = None

    @classmethod
    def of(cls, row: HostRow) -> HostRecord:
        return cls(uuid=row.uuid, name=row.name, uri=row.uri, kind=row.kind, state=row.state,
                   status=row.status, create_date=row.create_date,
                   last_op_date=row.last_op_date, description=row.description,
                   management_ip=row.management_ip, username=row.username,
                   ssh_port=row.ssh_port, zone_uuid=row.zone_uuid,
                   cluster_uuid=row.cluster_uuid)

    def row(self) -> HostRow:
        return HostRow(uuid=self.uuid, name=self.name, uri=self.uri, kind=self.kind,
                       state=self.state, status=self.status, create_date=self.create_date,
                       last_op_date=self.last_op_date, description=self.description,
                       management_ip=self.management_ip, username=self.username,
                       ssh_port=self.ssh_port, zone_uuid=self.zone_uuid,
                       cluster_uuid=self.cluster_uuid)

    def values(self) -> dict[str, Any]:
        return _fields_of(HOST_FIELDS, {
            "uuid": self.uuid, "name": self.name, "description": self.description,
            "zoneUuid": self.zone_uuid, "clusterUuid": self.cluster_uuid,
            "managementIp": self.management_ip, "hypervisorType": HYPERVISOR_TYPE,
            "state": self.state, "status": self.status,
            "username": self.username, "sshPort": self.ssh_port, "libvirtUri": self.uri,
            "createDate": self.create_date, "lastOpDate": self.last_op_date,
        })


@dataclass(slots=True)
class VmRecord:
    uuid: str
    host_uuid: str
    name: str
    state: str
    platform: str
    cpu_num: int
    memory_size: int
    has_agent_channel: bool
    qga_enabled: bool
    create_date: datetime
    last_op_date: datetime
    last_host_uuid: str | None = None
    description: str | None = None
    architecture: str | None = None
    socket_path: str | None = None
    #: ChangeResourceOwner's account; ``None`` is the ``admin`` account.
    owner_account_uuid: str | None = None

    @classmethod
    def of(cls, row: VmRow) -> VmRecord:
        return cls(uuid=row.uuid, host_uuid=row.host_uuid, name=row.name, state=row.state,
                   platform=row.platform, cpu_num=row.cpu_num, memory_size=row.memory_size,
                   has_agent_channel=row.has_agent_channel, qga_enabled=row.qga_enabled,
                   create_date=row.create_date, last_op_date=row.last_op_date,
                   last_host_uuid=row.last_host_uuid, description=row.description,
                   architecture=row.architecture, socket_path=row.socket_path,
                   owner_account_uuid=row.owner_account_uuid)

    def columns(self) -> dict[str, Any]:
        """The row's column values, for inserts and updates."""
        return {
            "uuid": self.uuid, "host_uuid": self.host_uuid, "name": self.name,
            "state": self.state, "platform": self.platform, "cpu_num": self.cpu_num,
            "memory_size": self.memory_size, "has_agent_channel": self.has_agent_channel,
            "qga_enabled": self.qga_enabled, "create_date": self.create_date,
            "last_op_date": self.last_op_date, "last_host_uuid": self.last_host_uuid,
            "description": self.description, "architecture": self.architecture,
            "socket_path": self.socket_path, "owner_account_uuid": self.owner_account_uuid,
        }

    def values(self, host: HostRecord | None) -> dict[str, Any]:
        """VmInstanceInventory's fields; zone and cluster are the host's."""
        return _fields_of(VM_INSTANCE_FIELDS, {
            "uuid": self.uuid, "name": self.name, "description": self.description,
            "zoneUuid": host.zone_uuid if host else None,
            "clusterUuid": host.cluster_uuid if host else None,
            "hostUuid": self.host_uuid, "lastHostUuid": self.last_host_uuid,
            "platform": self.platform, "architecture": self.architecture, "type": VM_TYPE,
            "hypervisorType": HYPERVISOR_TYPE, "memorySize": self.memory_size,
            "cpuNum": self.cpu_num, "cpuSpeed": 0,
            "createDate": self.create_date, "lastOpDate": self.last_op_date,
            "state": self.state, "vmNics": [], "allVolumes": [],
        })


def _fields_of(table: Mapping[str, object], known: dict[str, Any]) -> dict[str, Any]:
    # Every field of the table, in its order; those vmexec does not know are null.
    assert known.keys() <= table.keys(), known.keys() - table.keys()
    return {name: known.get(name) for name in table}


def to_wire(values: Mapping[str, Any]) -> dict[str, Any]:
    """ZStack's JSON of an inventory: dates in ZStack's format, null fields left out."""
    wire: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        wire[key] = format_date(value) if isinstance(value, datetime) else value
    return wire


def query_reply(query: Query, result: QueryResult, class_name: str) -> dict[str, Any]:
    """A Query* API's reply from ``result``, the evaluation of ``query`` over records (values,
    see the module docstring): ``inventories`` (unless only a count is asked), ``total`` when
    asked, and ``schema``."""
    reply: dict[str, Any] = {}
    if not query.count:
        reply["inventories"] = [to_wire(r) for r in result.records]
    if result.total is not None:
        reply["total"] = result.total
    reply["schema"] = schema_map("inventories", class_name, reply.get("inventories"))
    return reply
