"""Hosts: AddKVMHost, QueryHost, DeleteHost."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from vmexec.api.deps import AdminDep, ServicesDep
from vmexec.api.errors import invalid_argument
from vmexec.api.schemas.common import ERROR_RESPONSES, EmptyReply
from vmexec.api.schemas.inventory import (
    AddKVMHostParams,
    AddKVMHostRequest,
    Count,
    Fields,
    HostReply,
    Limit,
    Q,
    QueryHostReply,
    ReplyWithCount,
    Sort,
    Start,
)
from vmexec.zstack.classes import KVM_HOST_INVENTORY, schema_map, wants_schema
from vmexec.zstack.ids import is_uuid
from vmexec.zstack.inventories import HOST_FIELDS, kinds
from vmexec.zstack.query import parse_query

router = APIRouter(prefix="/zstack/v1/hosts", tags=["hosts"])
_KINDS = kinds(HOST_FIELDS)


def libvirt_uri(params: AddKVMHostParams) -> str:
    """The URI to reach the host: ``libvirtUri`` as given, else libvirt over SSH.

    Raises:
        ApiFailure: 503 SYS.1007 — neither ``libvirtUri`` nor ``managementIp`` and ``username``.
    """
    if params.libvirt_uri:
        return params.libvirt_uri.strip()
    if not params.management_ip or not params.username:
        raise invalid_argument("AddKVMHost needs managementIp and username (or libvirtUri)")
    address = params.management_ip.strip()
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"  # IPv6
    # no_tty: ssh must fail rather than prompt for a password on a terminal the server has not.
    return f"qemu+ssh://{params.username}@{address}:{params.ssh_port}/system?no_tty=1"


@router.post("/kvm", operation_id="AddKVMHost", response_model=HostReply,
             responses=ERROR_RESPONSES, summary="Add a KVM host (any libvirt URI, or a "
                                                "directory of guest-agent sockets)")
async def add_kvm_host(body: AddKVMHostRequest, request: Request, services: ServicesDep,
                       _admin: AdminDep) -> JSONResponse:
    """Admin only (else ``503 ID.1002``). The URI must be one the server's host URI policy
    allows (``qemu:///system``, ``qemu+ssh://``, ``qemu+tls://``, ``qemu+tcp://``,
    ``unix:///DIR``; no parameters that name programs or files): else ``503 SYS.1007``, before
    anything connects. The host must answer before it is added: a host that does not is
    ``503 SYS.1006`` with libvirt's reason in ``details``; a duplicate URI is ``503 SYS.1007``.
    Answers ``200`` with the inventory directly (ZStack's SDKs accept that for this async
    API)."""
    params = body.params
    if params.resource_uuid is not None and not is_uuid(params.resource_uuid):
        raise invalid_argument(f"resourceUuid must be 32 hex digits, got {params.resource_uuid!r}")
    inventory = await services.inventory.add_host(
        name=params.name, uri=libvirt_uri(params), management_ip=params.management_ip,
        username=params.username if not params.libvirt_uri else None,
        ssh_port=params.ssh_port if not params.libvirt_uri else None,
        cluster_uuid=params.cluster_uuid, description=params.description,
        host_uuid=params.resource_uuid)
    reply = {"inventory": inventory}
    if wants_schema(request.headers):
        reply["schema"] = schema_map("inventory", KVM_HOST_INVENTORY, inventory)
    return JSONResponse(reply)


async def _query(request: Request, services: ServicesDep, uuid: str | None) -> JSONResponse:
    query = parse_query(request.query_params.multi_items(), _KINDS)
    return JSONResponse(await services.inventory.query_hosts(query, uuid))


@router.get("", operation_id="QueryHost", response_model=QueryHostReply,
            responses=ERROR_RESPONSES, summary="Query hosts")
async def query_hosts(request: Request, services: ServicesDep, _admin: AdminDep,
                      q: Q = None, limit: Limit = None, start: Start = None,
                      count: Count = None, reply_with_count: ReplyWithCount = None,
                      sort: Sort = None, fields: Fields = None) -> JSONResponse:
    """As QueryVmInstance, over HostInventory's fields. Admins only (else ``503 ID.1002``)."""
    return await _query(request, services, None)


@router.get("/{uuid}", operation_id="QueryHostByUuid", response_model=QueryHostReply,
            responses=ERROR_RESPONSES, summary="Query one host")
async def query_host(uuid: str, request: Request, services: ServicesDep, _admin: AdminDep,
                     fields: Fields = None) -> JSONResponse:
    return await _query(request, services, uuid)


@router.delete("/{uuid}", operation_id="DeleteHost", response_model=EmptyReply,
               responses=ERROR_RESPONSES, summary="Forget a host and its VMs")
async def delete_host(uuid: str, services: ServicesDep, _admin: AdminDep) -> EmptyReply:
    """Admin only (else ``503 ID.1002``). The VMs keep running; vmexec only stops managing
    them. Unknown host: ``200`` too."""
    await services.inventory.delete_host(uuid)
    return EmptyReply()
