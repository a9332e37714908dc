"""Access keys: CreateAccessKey, QueryAccessKey, DeleteAccessKey, ChangeAccessKeyState.

An admin manages every account's keys; any other account only its own (another account's
key is "not found" to it, as an unknown one is).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from vmexec.api.deps import AuthDep, ServicesDep
from vmexec.api.errors import api_error
from vmexec.api.schemas.access_keys import (
    AccessKeyActionRequest,
    AccessKeyReply,
    CreateAccessKeyRequest,
    QueryAccessKeyReply,
)
from vmexec.api.schemas.common import ERROR_RESPONSES, EmptyReply
from vmexec.api.schemas.inventory import Count, Fields, Limit, Q, ReplyWithCount, Sort, Start
from vmexec.services.auth import AuthSession
from vmexec.zstack.errors import Code
from vmexec.zstack.inventories import ACCESS_KEY_FIELDS, AccessKeyState, kinds
from vmexec.zstack.query import parse_query

router = APIRouter(prefix="/zstack/v1/accesskeys", tags=["accesskeys"])
_KINDS = kinds(ACCESS_KEY_FIELDS)


def _scope(session: AuthSession) -> str | None:
    # The account whose keys the caller may see and change; None: every account's.
    return None if session.admin else session.account_uuid


@router.post("", operation_id="CreateAccessKey", response_model=AccessKeyReply,
             responses=ERROR_RESPONSES, summary="Create an access key (the secret is shown "
                                                "only in this reply)")
async def create_access_key(body: CreateAccessKeyRequest, services: ServicesDep,
                            session: AuthDep) -> JSONResponse:
    """For the caller's own account, or any account for an admin (else ``503 ID.1002``).
    ``AccessKeyID``/``AccessKeySecret`` are generated when absent; a taken ``AccessKeyID``
    or an unknown account: ``503 SYS.1007``."""
    params = body.params
    if not session.admin and params.account_uuid.strip().lower() != session.account_uuid:
        raise api_error(Code.ID_PERMISSION_DENIED,
                        f"account[name:{session.account_name}] may only create access keys "
                        "of its own")
    key, secret = await services.access_keys.create(
        account_uuid=params.account_uuid, user_uuid=params.user_uuid,
        access_key_id=params.access_key_id, secret=params.access_key_secret,
        description=params.description)
    return JSONResponse({"inventory": key.inventory(secret)})


async def _query(request: Request, services: ServicesDep, session: AuthSession,
                 uuid: str | None) -> JSONResponse:
    query = parse_query(request.query_params.multi_items(), _KINDS)
    return JSONResponse(await services.access_keys.query(query, uuid,
                                                         account_uuid=_scope(session)))


@router.get("", operation_id="QueryAccessKey", response_model=QueryAccessKeyReply,
            responses=ERROR_RESPONSES, summary="Query access keys (without their secrets)")
async def query_access_keys(request: Request, services: ServicesDep, session: AuthDep,
                            q: Q = None, limit: Limit = None, start: Start = None,
                            count: Count = None, reply_with_count: ReplyWithCount = None,
                            sort: Sort = None, fields: Fields = None) -> JSONResponse:
    """The caller's own keys (an admin: every key), as QueryVmInstance does queries."""
    return await _query(request, services, session, None)


@router.get("/{uuid}", operation_id="QueryAccessKeyByUuid", response_model=QueryAccessKeyReply,
            responses=ERROR_RESPONSES, summary="Query one access key")
async def query_access_key(uuid: str, request: Request, services: ServicesDep,
                           session: AuthDep, fields: Fields = None) -> JSONResponse:
    return await _query(request, services, session, uuid)


@router.delete("/{uuid}", operation_id="DeleteAccessKey", response_model=EmptyReply,
               responses=ERROR_RESPONSES, summary="Delete an access key")
async def delete_access_key(uuid: str, services: ServicesDep, session: AuthDep) -> EmptyReply:
    """Requests signed with it are refused from now on. An unknown key (or another
    account's, for a Normal account): ``200``, nothing deleted."""
    await services.access_keys.delete(uuid, account_uuid=_scope(session))
    return EmptyReply()


@router.put("/{uuid}/actions", operation_id="ChangeAccessKeyState",
            response_model=AccessKeyReply, responses=ERROR_RESPONSES,
            summary="Enable or disable an access key")
async def change_access_key_state(uuid: str, body: AccessKeyActionRequest,
                                  services: ServicesDep, session: AuthDep) -> JSONResponse:
    """``{"changeAccessKeyState": {"stateEvent": "enable"|"disable"}}``; a disabled key's
    requests are refused (``503 ID.1001``). Unknown key: ``503 SYS.1007``."""
    state = (AccessKeyState.ENABLED if body.change_access_key_state.state_event == "enable"
             else AccessKeyState.DISABLED)
    key = await services.access_keys.set_state(uuid, state, account_uuid=_scope(session))
    return JSONResponse({"inventory": key.inventory()})
