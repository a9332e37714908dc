"""Accounts: UpdateAccount (an account changes its own password)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from vmexec.api.deps import AuthDep, ServicesDep
from vmexec.api.errors import invalid_argument
from vmexec.api.schemas.accounts import AccountInventory, AccountReply, UpdateAccountRequest
from vmexec.api.schemas.common import ERROR_RESPONSES
from vmexec.zstack.dates import format_date

router = APIRouter(prefix="/zstack/v1/accounts", tags=["accounts"])


@router.put("/{account_uuid}", operation_id="UpdateAccount", response_model=AccountReply,
            responses=ERROR_RESPONSES, summary="Change the password of the session's account")
async def update_account(account_uuid: str, body: UpdateAccountRequest, http: Request,
                         services: ServicesDep, session: AuthDep) -> AccountReply:
    """``password`` and ``oldPassword`` are SHA-512 hex digests, as in LogInByAccount. Every
    other session of the account ends; the caller's stays. Another account: ``503 ID.1002``;
    a wrong or missing ``oldPassword``: ``503 SYS.1007``; too many wrong old passwords:
    ``503 ID.1008``."""
    params = body.update_account
    if params.description is not None or (
            params.name is not None and params.name != session.account_name):
        raise invalid_argument("only the password of an account can be updated")
    if params.password is None:
        raise invalid_argument("updateAccount.password is required (the SHA-512 hex digest "
                               "of the new password)")
    account = await services.auth.change_password(
        session, account_uuid, password_sha512=params.password,
        old_password_sha512=params.old_password,
        address=http.client.host if http.client else None)
    return AccountReply(inventory=AccountInventory(
        uuid=account.uuid, name=account.name, type=account.type,
        create_date=format_date(account.create_date),
        last_op_date=format_date(account.last_op_date)))
