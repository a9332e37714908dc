"""VM instances: QueryVmInstance, GetVmQga, SetVmQga (the generic action endpoint) and
GetVmGuestToolsInfo."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from vmexec.api.deps import AdminDep, ServicesDep, ViewerDep
from vmexec.api.errors import bad_request
from vmexec.api.schemas.common import ERROR_RESPONSES, EmptyReply
from vmexec.api.schemas.inventory import (
    Count,
    Fields,
    GetVmQgaReply,
    GuestToolsInfoReply,
    Limit,
    Q,
    QueryVmInstanceReply,
    ReplyWithCount,
    Sort,
    Start,
    VmActionRequest,
)
from vmexec.services.inventory import Viewer
from vmexec.zstack.inventories import VM_INSTANCE_FIELDS, kinds
from vmexec.zstack.query import parse_query

router = APIRouter(prefix="/zstack/v1/vm-instances", tags=["vm-instances"])
_KINDS = kinds(VM_INSTANCE_FIELDS)


async def _query(request: Request, services: ServicesDep, viewer: Viewer,
                 uuid: str | None) -> JSONResponse:
    query = parse_query(request.query_params.multi_items(), _KINDS)
    return JSONResponse(await services.inventory.query_vms(query, uuid, visible_to=viewer))


@router.get("", operation_id="QueryVmInstance", responses=ERROR_RESPONSES,
            response_model=QueryVmInstanceReply, summary="Query VM instances")
async def query_vm_instances(request: Request, services: ServicesDep, viewer: ViewerDep,
                             q: Q = None, limit: Limit = None, start: Start = None,
                             count: Count = None, reply_with_count: ReplyWithCount = None,
                             sort: Sort = None, fields: Fields = None) -> JSONResponse:
    """The VMs the caller's account owns (an admin: every VM). Unknown fields in
    ``q``/``sort``/``fields`` and values of the wrong kind: ``503 SYS.1007``; malformed
    conditions and non-integer ``limit``/``start``: ``400``."""
    return await _query(request, services, viewer, None)


@router.get("/{uuid}", operation_id="QueryVmInstanceByUuid", responses=ERROR_RESPONSES,
            response_model=QueryVmInstanceReply, summary="Query one VM instance")
async def query_vm_instance(uuid: str, request: Request, services: ServicesDep,
                            viewer: ViewerDep, fields: Fields = None) -> JSONResponse:
    """An unknown UUID (or another account's VM) gives an empty ``inventories`` list, as in
    ZStack."""
    return await _query(request, services, viewer, uuid)


@router.get("/{uuid}/qga", operation_id="GetVmQga", response_model=GetVmQgaReply,
            responses=ERROR_RESPONSES, summary="Whether vmexec may use the VM's guest agent")
async def get_vm_qga(uuid: str, services: ServicesDep, viewer: ViewerDep) -> GetVmQgaReply:
    """Unknown VM (or another account's): ``503 SYS.1007``."""
    return GetVmQgaReply(enable=await services.inventory.get_qga(uuid, visible_to=viewer))


@router.get("/{uuid}/guest-tools-infos", operation_id="GetVmGuestToolsInfo",
            response_model=GuestToolsInfoReply, response_model_exclude_none=True,
            responses=ERROR_RESPONSES, summary="The VM's guest agent, asked live")
async def get_vm_guest_tools_info(uuid: str, services: ServicesDep,
                                  viewer: ViewerDep) -> dict[str, Any]:
    """Unknown VM (or another account's): ``503 SYS.1007``."""
    return await services.inventory.guest_tools_info(uuid, visible_to=viewer)


@router.put("/{uuid}/actions", operation_id="VmInstanceAction", response_model=EmptyReply,
            responses=ERROR_RESPONSES,
            summary="ZStack's action endpoint: the body's one key names the action "
                    "(setVmQga)")
async def vm_instance_action(uuid: str, body: VmActionRequest, services: ServicesDep,
                             _admin: AdminDep) -> EmptyReply:
    """``{"setVmQga": {"enable": bool}}`` — allow or forbid using the VM's agent (kept across
    restarts). Admins only (else ``503 ID.1002``). No known action in the body: ``400``;
    unknown VM: ``503 SYS.1007``."""
    unknown = sorted(body.model_extra or {})
    if body.set_vm_qga is None:
        raise bad_request(
            "the body does not name a known action of /vm-instances/{uuid}/actions: "
            f"got {unknown or 'no action'}, known actions: ['setVmQga']")
    if unknown:
        raise bad_request(f"one action per request: setVmQga together with {unknown}")
    await services.inventory.set_qga(uuid, body.set_vm_qga.enable)
    return EmptyReply()
