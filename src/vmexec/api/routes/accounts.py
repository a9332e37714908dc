"""Accounts: CreateAccount, QueryAccount, UpdateAccount, DeleteAccount (admins; an account may
change its own password), and ChangeResourceOwner (admins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from vmexec.api.deps import AdminDep, AuthDep, ServicesDep, ViewerDep
from vmexec.api.errors import api_error, invalid_argument
from vmexec.api.schemas.accounts import (
    AccountReply,
    ChangeResourceOwnerReply,
    ChangeResourceOwnerRequest,
    CreateAccountRequest,
    QueryAccountReply,
    QueryAccountResourceRefReply,
    UpdateAccountRequest,
)
from vmexec.api.schemas.common import ERROR_RESPONSES, EmptyReply
from vmexec.api.schemas.inventory import Count, Fields, Limit, Q, ReplyWithCount, Sort, Start
from vmexec.services.accounts import account_inventory
from vmexec.services.auth import AccountInfo
from vmexec.zstack.dates import format_date
from vmexec.zstack.errors import Code
from vmexec.zstack.inventories import (
    ACCOUNT_FIELDS,
    ACCOUNT_RESOURCE_REF_FIELDS,
    VM_CONCRETE_RESOURCE_TYPE,
    VM_RESOURCE_TYPE,
    kinds,
)
from vmexec.zstack.query import parse_query

router = APIRouter(prefix="/zstack/v1/accounts", tags=["accounts"])
#: ChangeResourceOwner's path is ZStack's: ``/account`` (singular).
resources_router = APIRouter(prefix="/zstack/v1/account", tags=["accounts"])
_KINDS = kinds(ACCOUNT_FIELDS)
_REF_KINDS = kinds(ACCOUNT_RESOURCE_REF_FIELDS)


def _reply(account: AccountInfo) -> dict[str, Any]:
    return {"inventory": account_inventory(account)}


@router.post("", operation_id="CreateAccount", response_model=AccountReply,
             response_model_exclude_none=True, responses=ERROR_RESPONSES,
             summary="Create an account (admins)")
async def create_account(body: CreateAccountRequest, services: ServicesDep,
                         _admin: AdminDep) -> JSONResponse:
    """``password`` is the SHA-512 hex digest, as in LogInByAccount. A taken name or UUID, a
    password that is not a SHA-512 digest: ``503 SYS.1007``. Not an admin: ``503 ID.1002``."""
    params = body.params
    account = await services.accounts.create(
        name=params.name, password_sha512=params.password, type=params.type,
        description=params.description, uuid=params.resource_uuid)
    return JSONResponse(_reply(account))


async def _query(request: Request, services: ServicesDep, uuid: str | None) -> JSONResponse:
    query = parse_query(request.query_params.multi_items(), _KINDS)
    return JSONResponse(await services.accounts.query(query, uuid))


@router.get("", operation_id="QueryAccount", response_model=QueryAccountReply,
            responses=ERROR_RESPONSES, summary="Query accounts (admins)")
async def query_accounts(request: Request, services: ServicesDep, _admin: AdminDep,
                         q: Q = None, limit: Limit = None, start: Start = None,
                         count: Count = None, reply_with_count: ReplyWithCount = None,
                         sort: Sort = None, fields: Fields = None) -> JSONResponse:
    """As QueryVmInstance, over AccountInventory's fields."""
    return await _query(request, services, None)


@router.get("/resources/refs", operation_id="QueryAccountResourceRef",
            response_model=QueryAccountResourceRefReply, responses=ERROR_RESPONSES,
            summary="Which account owns which VM")
async def query_account_resource_refs(
        request: Request, services: ServicesDep, viewer: ViewerDep, q: Q = None,
        limit: Limit = None, start: Start = None, count: Count = None,
        reply_with_count: ReplyWithCount = None, sort: Sort = None,
        fields: Fields = None) -> JSONResponse:
    """The owners of the VMs the caller sees: an admin every VM's (``admin``'s until given
    away), a Normal account its own. As QueryVmInstance does queries."""
    query = parse_query(request.query_params.multi_items(), _REF_KINDS)
    return JSONResponse(await services.inventory.query_owners(
        query, visible_to=viewer, admin_account_uuid=await services.accounts.admin_uuid()))


@router.get("/{uuid}", operation_id="QueryAccountByUuid", response_model=QueryAccountReply,
            responses=ERROR_RESPONSES, summary="Query one account (admins)")
async def query_account(uuid: str, request: Request, services: ServicesDep, _admin: AdminDep,
                        fields: Fields = None) -> JSONResponse:
    return await _query(request, services, uuid)


@router.put("/{account_uuid}", operation_id="UpdateAccount", response_model=AccountReply,
            response_model_exclude_none=True, responses=ERROR_RESPONSES,
            summary="Change an account's password (its own), or name and description (admins)")
async def update_account(account_uuid: str, body: UpdateAccountRequest, http: Request,
                         services: ServicesDep, session: AuthDep) -> JSONResponse:
    """``password`` and ``oldPassword`` are SHA-512 hex digests, as in LogInByAccount.

    An account changes its own password giving ``oldPassword``: its other sessions end, the
    caller's stays (a wrong or missing one: ``503 SYS.1007``; too many wrong ones: ``503
    ID.1008``). An admin also renames and describes any account (not ``admin``'s name) and
    sets another account's password without ``oldPassword`` (all its sessions end). Anything
    else by a Normal account: ``503 ID.1002``."""
    params = body.update_account
    target = account_uuid.strip().lower()
    own = target == session.account_uuid
    renames = params.name is not None and not (own and params.name == session.account_name)
    if not session.admin and (not own or renames or params.description is not None):
        raise api_error(Code.ID_PERMISSION_DENIED,
                        f"account[name:{session.account_name}] may only change its own "
                        "password: other account changes are for admins")
    if params.password is None and not renames and params.description is None:
        raise invalid_argument("updateAccount changes nothing: give password (the SHA-512 hex "
                               "digest of the new password), name or description")
    account: AccountInfo | None = None
    if renames and params.name is not None:
        # Before the password changes: a refused rename must leave the account as it was.
        await services.accounts.check_rename(target, params.name)
    if own and params.password is not None:
        account = await services.auth.change_password(
            session, target, password_sha512=params.password,
            old_password_sha512=params.old_password,
            address=http.client.host if http.client else None)
    if renames or params.description is not None or (not own and params.password):
        account = await services.accounts.update(
            target, name=params.name if renames else None, description=params.description,
            password_sha512=None if own else params.password)
    assert account is not None
    return JSONResponse(_reply(account))


@router.delete("/{uuid}", operation_id="DeleteAccount", response_model=EmptyReply,
               responses=ERROR_RESPONSES, summary="Delete an account (admins)")
async def delete_account(uuid: str, services: ServicesDep, _admin: AdminDep) -> EmptyReply:
    """Its sessions and access keys end at once; its VMs go back to ``admin``. The ``admin``
    account: ``503 SYS.1007``. An unknown account: ``200`` too (ZStack's deletes are
    idempotent)."""
    deleted = await services.accounts.delete(uuid)
    if deleted is not None:
        await services.inventory.disown(deleted.uuid)
    return EmptyReply()


@resources_router.post("/{account_uuid}/resources", operation_id="ChangeResourceOwner",
                       response_model=ChangeResourceOwnerReply, responses=ERROR_RESPONSES,
                       summary="Give a VM to an account (admins)")
async def change_resource_owner(account_uuid: str, body: ChangeResourceOwnerRequest,
                                services: ServicesDep,
                                _admin: AdminDep) -> ChangeResourceOwnerReply:
    """The account sees, queries and runs commands on the VM from now on; its previous owner
    no longer does (an admin sees every VM). Unknown account or VM: ``503 SYS.1007``."""
    account = await services.accounts.get(account_uuid)
    vm_uuid = body.params.resource_uuid.strip().lower()
    await services.inventory.change_owner(vm_uuid, account.uuid)
    now = format_date(datetime.now(UTC))
    return ChangeResourceOwnerReply.model_validate({"inventory": {
        "accountUuid": account.uuid, "resourceUuid": vm_uuid,
        "resourceType": VM_RESOURCE_TYPE, "concreteResourceType": VM_CONCRETE_RESOURCE_TYPE,
        "createDate": now, "lastOpDate": now}})
