"""Hosts and VMs on the wire: request bodies, and reply models that document the replies.

Query replies are built by :class:`~vmexec.services.inventory.Inventory` (``fields=`` makes
their shape dynamic), so the reply models here serve the OpenAPI document only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Query as QueryParam
from pydantic import ConfigDict, Field, StrictBool, WithJsonSchema, create_model
from pydantic.alias_generators import to_snake

from vmexec.api.schemas.common import Int, WireModel
from vmexec.hypervisor.uris import MAX_URI_CHARS
from vmexec.zstack.inventories import AUDIT_FIELDS, HOST_FIELDS, VM_INSTANCE_FIELDS
from vmexec.zstack.inventories import Field as InventoryField
from vmexec.zstack.query import (
    CONDITION_PATTERN,
    FIELDS_PATTERN,
    INTEGER_PATTERN,
    MAX_CONDITIONS,
    MAX_PARAMETER_CHARS,
    FieldKind,
)

Tags = list[str]

#: Replies are built by the inventory service, so these models only document them:
#: ``fields=`` can leave any field out, so every field is optional.
class _DocModel(WireModel):
    model_config = ConfigDict(extra="allow")


_TYPES: Mapping[FieldKind, Any] = {
    FieldKind.STRING: str, FieldKind.NUMBER: int, FieldKind.DATE: str,
    FieldKind.LIST: list[dict[str, Any]],
}


def inventory_model(name: str, doc: str,
                    table: Mapping[str, InventoryField]) -> type[WireModel]:
    # The fields come from the one table of the inventory (vmexec.zstack.inventories).
    fields: dict[str, Any] = {
        to_snake(wire): (_TYPES[f.kind] | None, Field(
            default=None, alias=wire, description=f.description,
            examples=[f.example] if f.example is not None else None))
        for wire, f in table.items()}
    return create_model(name, __base__=_DocModel, __doc__=doc, **fields)


VmInstanceInventory = inventory_model(
    "VmInstanceInventory", "ZStack's VmInstanceInventory; null fields are left out.",
    VM_INSTANCE_FIELDS)
HostInventory = inventory_model(
    "HostInventory", "ZStack's (KVM)HostInventory, plus ``libvirtUri``; null fields are left out.",
    HOST_FIELDS)


def query_reply_model(name: str, inventory: type[WireModel]) -> type[WireModel]:
    return create_model(
        name, __base__=_DocModel,
        __doc__="A query's reply, plus ZStack's ``schema`` map (JSON path → ZStack class).",
        inventories=(list[inventory] | None, None),  # type: ignore[valid-type,arg-type]
        total=(int | None, Field(default=None,
                                 description="with count=true or replyWithCount=true")))


QueryVmInstanceReply = query_reply_model("QueryVmInstanceReply", VmInstanceInventory)
QueryHostReply = query_reply_model("QueryHostReply", HostInventory)
AuditInventory = inventory_model(
    "AuditInventory", "vmexec's audit entry: one state-changing API call; null fields are "
    "left out.", AUDIT_FIELDS)
QueryAuditReply = query_reply_model("QueryAuditReply", AuditInventory)


class AddKVMHostParams(WireModel):
    name: str = Field(min_length=1, max_length=255)
    management_ip: str | None = Field(
        default=None, max_length=255, examples=["10.0.0.5"],
        description="Reached as qemu+ssh://username@managementIp:sshPort/system, with the SSH "
                    "key of the user running vmexec (required unless libvirtUri is given).")
    username: str | None = Field(default=None, max_length=255, examples=["root"])
    password: str | None = Field(
        default=None, max_length=255,
        description="Accepted for ZStack compatibility and not used: vmexec logs in by key.")
    ssh_port: Annotated[Int, Field(ge=1, le=65535)] = 22
    cluster_uuid: str | None = None
    description: str | None = Field(default=None, max_length=2048)
    resource_uuid: str | None = Field(default=None, description="UUID for the new host")
    system_tags: Tags | None = None
    user_tags: Tags | None = None
    # --- vmexec extension -----------------------------------------------------------------
    libvirt_uri: str | None = Field(
        default=None, max_length=MAX_URI_CHARS,
        examples=["qemu+tcp://10.0.0.5/system", "unix:///var/run/qemu-server"],
        description="qemu:///system, qemu+ssh://[user@]host[:port]/system, qemu+tls://..., "
                    "qemu+tcp://..., or unix:///dir for a directory of guest-agent sockets "
                    "(one VM per *.sock / *.qga); overrides managementIp/username/sshPort. "
                    "Only the transports the server allows, and no parameters but no_tty, "
                    "no_verify and mode unless its operator allows more (else 503 SYS.1007).")


class AddKVMHostRequest(WireModel):
    params: AddKVMHostParams
    system_tags: Tags | None = None
    user_tags: Tags | None = None


HostReply = create_model("HostReply", __base__=WireModel, inventory=(HostInventory, ...))


class SetVmQgaParams(WireModel):
    enable: StrictBool


def _one_action(schema: dict[str, Any]) -> None:
    # What the route accepts: setVmQga (the one action), tags, nothing else. The model itself
    # stays lenient so that the route can answer a missing or unknown action with its own 400.
    action = schema["properties"]["setVmQga"]
    schema["properties"]["setVmQga"] = next(
        option for option in action.get("anyOf", [action]) if option.get("type") != "null")
    schema["required"] = ["setVmQga"]
    schema["additionalProperties"] = False


class VmActionRequest(WireModel):
    """``PUT /vm-instances/{uuid}/actions``: exactly one action, named by its key
    (``setVmQga``); a missing or unknown action is ``400``."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_one_action)

    set_vm_qga: SetVmQgaParams | None = None
    system_tags: Tags | None = None
    user_tags: Tags | None = None


class GetVmQgaReply(WireModel):
    enable: bool


class GuestToolsInfoReply(WireModel):
    version: str | None = Field(default=None, examples=["7.2.22"])
    status: str = Field(examples=["Running"],
                        description="Running, NotRunning (channel but no answer) or "
                                    "Not Connected (no channel, or the VM is not running)")
    features: dict[str, Any] = Field(default_factory=dict,
                                     examples=[{"guestExec": True, "guestFileTransfer": True}])


#: The query parameters, documented exactly as :func:`vmexec.zstack.query.parse_query` reads
#: them (the raw query string is parsed there, ``q`` repeated; FastAPI validates nothing, the
#: schemas below only say what is accepted). Other parameters are ignored, as ZStack does.
Q = Annotated[list[str] | None, WithJsonSchema({
    "type": "array", "maxItems": MAX_CONDITIONS,
    "items": {"type": "string", "minLength": 1, "maxLength": MAX_PARAMETER_CHARS,
              "pattern": CONDITION_PATTERN}}), QueryParam(
    description="Condition <field><op><value>; ops = != > < >= <= ?= (in) !?= (not in) "
                "~= (like: % any run, _ one character) !~=, or '<field> is null' / "
                f"'<field> not null'. Repeat for AND (at most {MAX_CONDITIONS}, each at most "
                f"{MAX_PARAMETER_CHARS} characters). Malformed: 400; unknown field or a value "
                "of the wrong kind: 503 SYS.1007.", examples=["name=vm_1"])]
_COUNTER = WithJsonSchema({"type": "string", "pattern": INTEGER_PATTERN,
                           "maxLength": MAX_PARAMETER_CHARS})
Limit = Annotated[str | None, _COUNTER, QueryParam(
    description="Page size (default 1000): a non-negative integer")]
Start = Annotated[str | None, _COUNTER, QueryParam(
    description="Offset of the page: a non-negative integer")]
_TEXT = WithJsonSchema({"type": "string", "maxLength": MAX_PARAMETER_CHARS})
Count = Annotated[str | None, _TEXT, QueryParam(
    description="true (any case): reply with the total only; anything else is false")]
ReplyWithCount = Annotated[str | None, _TEXT, QueryParam(
    alias="replyWithCount", description="true (any case): reply with the page and the total")]
Sort = Annotated[str | None, _TEXT, QueryParam(
    description="+field or -field (unknown field: 503 SYS.1007)", examples=["-name"])]
Fields = Annotated[str | None, WithJsonSchema({
    "type": "string", "pattern": FIELDS_PATTERN, "maxLength": MAX_PARAMETER_CHARS}), QueryParam(
    description="Comma-separated fields to return (unknown field: 503 SYS.1007)")]
