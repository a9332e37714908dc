"""ZStack's inventories as vmexec serves them: the queryable fields of each, and state names.

Each field table is the one list of an inventory's fields: the server builds its replies and
evaluates ``q=`` queries from it, and the OpenAPI models are made from it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from vmexec.zstack.exec import ExecutionState
from vmexec.zstack.query import FieldKind

HYPERVISOR_TYPE = "KVM"
VM_TYPE = "UserVm"


class VmState(enum.StrEnum):
    RUNNING = "Running"
    STOPPED = "Stopped"
    PAUSED = "Paused"
    STOPPING = "Stopping"
    CRASHED = "Crashed"
    UNKNOWN = "Unknown"


class GuestToolsStatus(enum.StrEnum):
    """GetVmGuestToolsInfo's ``status``."""

    RUNNING = "Running"
    NOT_RUNNING = "NotRunning"
    NOT_CONNECTED = "Not Connected"


class HostState(enum.StrEnum):
    ENABLED = "Enabled"


class HostStatus(enum.StrEnum):
    CONNECTED = "Connected"
    DISCONNECTED = "Disconnected"


@dataclass(frozen=True, slots=True)
class Field:
    kind: FieldKind
    description: str | None = None
    example: object = None


_S, _N, _D, _L = FieldKind.STRING, FieldKind.NUMBER, FieldKind.DATE, FieldKind.LIST
_DATE_EXAMPLE = "Oct 17, 2024 5:43:35 AM"

#: ZStack's VmInstanceInventory (lists only for null tests and ``fields=``).
VM_INSTANCE_FIELDS: Mapping[str, Field] = {
    "uuid": Field(_S, "libvirt domain UUID, 32 hex digits", "fc022ba201c135d8809c5e02bf6bf156"),
    "name": Field(_S), "description": Field(_S), "zoneUuid": Field(_S),
    "clusterUuid": Field(_S), "imageUuid": Field(_S), "hostUuid": Field(_S),
    "lastHostUuid": Field(_S), "instanceOfferingUuid": Field(_S), "rootVolumeUuid": Field(_S),
    "platform": Field(_S, None, "Linux"), "architecture": Field(_S, None, "x86_64"),
    "type": Field(_S, None, VM_TYPE), "hypervisorType": Field(_S, None, HYPERVISOR_TYPE),
    "memorySize": Field(_N, "bytes"), "cpuNum": Field(_N), "cpuSpeed": Field(_N),
    "allocatorStrategy": Field(_S), "createDate": Field(_D, None, _DATE_EXAMPLE),
    "lastOpDate": Field(_D, None, _DATE_EXAMPLE),
    "state": Field(_S, ", ".join(VmState), VmState.RUNNING.value), "guestOsType": Field(_S),
    "vmNics": Field(_L), "allVolumes": Field(_L),
}

#: ZStack's HostInventory, KVMHostInventory's ``username``/``sshPort``, and vmexec's
#: ``libvirtUri`` (how the host is reached).
HOST_FIELDS: Mapping[str, Field] = {
    "uuid": Field(_S), "name": Field(_S), "description": Field(_S), "zoneUuid": Field(_S),
    "clusterUuid": Field(_S), "managementIp": Field(_S),
    "hypervisorType": Field(_S, None, HYPERVISOR_TYPE),
    "state": Field(_S, None, HostState.ENABLED.value),
    "status": Field(_S, ", ".join(HostStatus), HostStatus.CONNECTED.value),
    "architecture": Field(_S), "username": Field(_S), "sshPort": Field(_N),
    "libvirtUri": Field(_S, "vmexec extension: how the host is reached", "qemu:///system"),
    "createDate": Field(_D, None, _DATE_EXAMPLE), "lastOpDate": Field(_D, None, _DATE_EXAMPLE),
}

#: vmexec's GuestVmCommandExecutionInventory (QueryGuestVmCommandExecution). Booleans are
#: queried as ``true``/``false``.
EXECUTION_FIELDS: Mapping[str, Field] = {
    "uuid": Field(_S, "the execution's UUID, which is its job's",
                  "5cb4a1b0fb8e4c7d9a3e1f2b6c7d8e9f"),
    "vmInstanceUuid": Field(_S), "runUuid": Field(_S, "the run it is a target of, if any"),
    "accountUuid": Field(_S), "command": Field(_S, None, "uptime"),
    "platform": Field(_S, None, "Linux"), "shell": Field(_S, None, "default"),
    "state": Field(_S, ", ".join(ExecutionState), ExecutionState.SUCCEEDED.value),
    "exitCode": Field(_N, None, 0), "signal": Field(_N, "the signal that ended the command"),
    "errorCode": Field(_S, "when vmexec could not run it, timed out or cancelled",
                       "VM.EXEC.1003"),
    "errorDetails": Field(_S), "createDate": Field(_D, None, _DATE_EXAMPLE),
    "startDate": Field(_D, None, _DATE_EXAMPLE), "finishDate": Field(_D, None, _DATE_EXAMPLE),
    "durationMs": Field(_N), "stdoutBytes": Field(_N, "bytes written, kept or not"),
    "stderrBytes": Field(_N), "stdoutTruncated": Field(_S, "true or false", "false"),
    "stderrTruncated": Field(_S, "true or false", "false"),
}

#: vmexec's AuditInventory: one state-changing API call (``GET /zstack/v1/audits``).
AUDIT_FIELDS: Mapping[str, Field] = {
    "uuid": Field(_S), "accountUuid": Field(_S), "accountName": Field(_S, None, "admin"),
    "credential": Field(_S, "which credential, never the credential itself: session:<first "
                            "16 hex of the token's SHA-256>, accesskey:<the key's uuid>",
                        "session:3f2a9c0d1e7b4a55"),
    "clientAddress": Field(_S, None, "127.0.0.1"), "method": Field(_S, None, "PUT"),
    "route": Field(_S, "the route's template", "/zstack/v1/vm-instances/commands/exec"),
    "apiName": Field(_S, "ZStack's API name", "ExecuteGuestVmCommand"),
    "resourceUuid": Field(_S, "the resource the call was about"),
    "status": Field(_N, "HTTP status of the answer", 200),
    "errorCode": Field(_S, "ZStack error code of a failed call", "ID.1001"),
    "success": Field(_S, "true for a 2xx answer", "true"),
    "durationMs": Field(_N), "createDate": Field(_D, "when the call was answered",
                                                 _DATE_EXAMPLE),
}


def kinds(fields: Mapping[str, Field]) -> dict[str, FieldKind]:
    """The field kinds of a table, as the query language reads them."""
    return {name: field.kind for name, field in fields.items()}


#: vmexec's GuestVmCommandRunInventory: one command on many VMs (QueryGuestVmCommandRun).
#: Counts per target state (``targetCounts``) and the targets themselves are in the reply
#: but not queryable.
RUN_FIELDS: Mapping[str, Field] = {
    "uuid": Field(_S, "the run's UUID, also its API job's", "8e5b4f1a2c3d4e5f6a7b8c9d0e1f2a3b"),
    "accountUuid": Field(_S), "command": Field(_S, None, "uptime"),
    "platform": Field(_S, None, "Linux"),
    "state": Field(_S, "Running, Succeeded, Failed, Cancelled", "Succeeded"),
    "maxConcurrency": Field(_N, "targets running at once (a percentage resolved at start)"),
    "maxErrors": Field(_N, "failed targets tolerated; one more stops the run"),
    "targetCount": Field(_N), "createDate": Field(_D, None, _DATE_EXAMPLE),
    "startDate": Field(_D, None, _DATE_EXAMPLE), "finishDate": Field(_D, None, _DATE_EXAMPLE),
}


class AccountType(enum.StrEnum):
    """ZStack's account types: an admin may do anything, a normal account uses its VMs."""

    SYSTEM_ADMIN = "SystemAdmin"
    NORMAL = "Normal"


class AccessKeyState(enum.StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


#: ZStack's AccountInventory.
ACCOUNT_FIELDS: Mapping[str, Field] = {
    "uuid": Field(_S), "name": Field(_S, None, "alice"), "description": Field(_S),
    "type": Field(_S, ", ".join(AccountType), AccountType.NORMAL.value),
    "createDate": Field(_D, None, _DATE_EXAMPLE), "lastOpDate": Field(_D, None, _DATE_EXAMPLE),
}

#: ZStack's AccessKeyInventory; ``AccessKeySecret`` only in CreateAccessKey's reply.
ACCESS_KEY_FIELDS: Mapping[str, Field] = {
    "uuid": Field(_S), "description": Field(_S), "accountUuid": Field(_S),
    "userUuid": Field(_S), "AccessKeyID": Field(_S, None, "x6J2w3bq0kJ3cXw0xM6k"),
    "state": Field(_S, ", ".join(AccessKeyState), AccessKeyState.ENABLED.value),
    "createDate": Field(_D, None, _DATE_EXAMPLE), "lastOpDate": Field(_D, None, _DATE_EXAMPLE),
}

#: ZStack's AccountResourceRefInventory (which account owns which VM); vmexec keeps no dates
#: of ownership, so the dates are left out.
ACCOUNT_RESOURCE_REF_FIELDS: Mapping[str, Field] = {
    "accountUuid": Field(_S), "resourceUuid": Field(_S),
    "resourceType": Field(_S, None, "VmInstanceVO"),
    "concreteResourceType": Field(_S, None, "org.zstack.header.vm.VmInstanceVO"),
}
#: The one kind of resource accounts own in vmexec.
VM_RESOURCE_TYPE = "VmInstanceVO"
VM_CONCRETE_RESOURCE_TYPE = "org.zstack.header.vm.VmInstanceVO"
