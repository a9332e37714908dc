"""Hosts and VMs on the wire: request bodies, and reply models that document the replies.

Query replies are built by :class:`~vmexec.services.inventory.Inventory` (``fields=`` makes
their shape dynamic), so the reply models here serve the OpenAPI document only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query as QueryParam
from pydantic import ConfigDict, Field, StrictBool

from vmexec.api.schemas.common import Int, WireModel

Tags = list[str]

#: ``fields=`` can leave any field out, so every field is optional.
_DOC_ONLY = ConfigDict(extra="allow")


class VmInstanceInventory(WireModel):
    """ZStack's VmInstanceInventory; null fields are left out."""

    model_config = _DOC_ONLY

    uuid: str | None = Field(default=None, description="libvirt domain UUID, 32 hex digits",
                             examples=["fc022ba201c135d8809c5e02bf6bf156"])
    name: str | None = None
    description: str | None = None
    zone_uuid: str | None = None
    cluster_uuid: str | None = None
    host_uuid: str | None = None
    last_host_uuid: str | None = None
    platform: str | None = Field(default=None, examples=["Linux"])
    architecture: str | None = Field(default=None, examples=["x86_64"])
    type: str | None = Field(default=None, examples=["UserVm"])
    hypervisor_type: str | None = Field(default=None, examples=["KVM"])
    memory_size: int | None = Field(default=None, description="bytes")
    cpu_num: int | None = None
    cpu_speed: int | None = None
    create_date: str | None = Field(default=None, examples=["Oct 17, 2024 5:43:35 AM"])
    last_op_date: str | None = Field(default=None, examples=["Oct 17, 2024 5:43:35 AM"])
    state: str | None = Field(default=None, examples=["Running"],
                              description="Running, Stopped, Paused, Stopping, Crashed, Unknown")
    vm_nics: list[dict[str, Any]] | None = None
    all_volumes: list[dict[str, Any]] | None = None


class HostInventory(WireModel):
    """ZStack's (KVM)HostInventory, plus ``libvirtUri``; null fields are left out."""

    model_config = _DOC_ONLY

    uuid: str | None = None
    name: str | None = None
    description: str | None = None
    zone_uuid: str | None = None
    cluster_uuid: str | None = None
    management_ip: str | None = None
    hypervisor_type: str | None = Field(default=None, examples=["KVM"])
    state: str | None = Field(default=None, examples=["Enabled"])
    status: str | None = Field(default=None, examples=["Connected"],
                               description="Connected or Disconnected")
    username: str | None = None
    ssh_port: int | None = None
    libvirt_uri: str | None = Field(default=None, examples=["qemu:///system"],
                                    description="vmexec extension: how the host is reached")
    create_date: str | None = None
    last_op_date: str | None = None


class QueryVmInstanceReply(WireModel):
    """A query's reply, plus ZStack's ``schema`` map (JSON path → ZStack class)."""

    model_config = _DOC_ONLY

    inventories: list[VmInstanceInventory] | None = None
    total: int | None = Field(default=None, description="with count=true or replyWithCount=true")


class QueryHostReply(WireModel):
    """A query's reply, plus ZStack's ``schema`` map (JSON path → ZStack class)."""

    model_config = _DOC_ONLY

    inventories: list[HostInventory] | None = None
    total: int | None = Field(default=None, description="with count=true or replyWithCount=true")


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
        default=None, examples=["qemu+tcp://10.0.0.5/system", "unix:///var/run/qemu-server"],
        description="Any libvirt URI, or unix:///dir for a directory of guest-agent sockets "
                    "(one VM per *.sock / *.qga); overrides managementIp/username/sshPort.")


class AddKVMHostRequest(WireModel):
    params: AddKVMHostParams
    system_tags: Tags | None = None
    user_tags: Tags | None = None


class HostReply(WireModel):
    inventory: HostInventory


class SetVmQgaParams(WireModel):
    enable: StrictBool


class VmActionRequest(WireModel):
    """``PUT /vm-instances/{uuid}/actions``: exactly one action, named by its key."""

    model_config = ConfigDict(extra="allow")

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


#: The query parameters, documented; they are read from the raw query string (``q`` repeats).
Q = Annotated[list[str] | None, QueryParam(
    description="Condition <field><op><value>; ops = != > < >= <= ?= (in) !?= (not in) "
                "~= (like, % wildcard) !~=, or '<field> is null' / '<field> not null'. "
                "Repeat for AND.", examples=["name=vm_1"])]
Limit = Annotated[str | None, QueryParam(description="Page size (default 1000)")]
Start = Annotated[str | None, QueryParam(description="Offset of the page")]
Count = Annotated[str | None, QueryParam(description="true: reply with the total only")]
ReplyWithCount = Annotated[str | None, QueryParam(
    alias="replyWithCount", description="true: reply with the page and the total")]
Sort = Annotated[str | None, QueryParam(description="+field or -field", examples=["-name"])]
Fields = Annotated[str | None, QueryParam(description="Comma-separated fields to return")]
