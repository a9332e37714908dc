"""Sessions: LogInByAccount, LogOut, ValidateSession (no Authorization header needed)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from vmexec.api.deps import ServicesDep
from vmexec.api.observe import note
from vmexec.api.schemas.common import ERROR_RESPONSES, EmptyReply
from vmexec.api.schemas.sessions import (
    LogInByAccountRequest,
    LogInReply,
    SessionInventory,
    ValidateSessionReply,
)
from vmexec.zstack.dates import format_date

router = APIRouter(prefix="/zstack/v1/accounts", tags=["sessions"])


@router.put("/login", operation_id="LogInByAccount", response_model=LogInReply,
            response_model_exclude_none=True, responses=ERROR_RESPONSES,
            summary="Log in with an account name and the SHA-512 hex of its password")
async def log_in_by_account(body: LogInByAccountRequest, services: ServicesDep,
                            http: Request) -> LogInReply:
    """Wrong name or password: ``503 ID.1000``. Too many failed logins of the account or from
    the client's address lately: ``503 ID.1008`` with ``Retry-After`` (seconds)."""
    params = body.log_in_by_account
    note(http.scope, account_name=params.account_name)
    session = await services.auth.login(params.account_name, params.password,
                                        address=http.client.host if http.client else None)
    return LogInReply(inventory=SessionInventory(
        uuid=session.uuid, account_uuid=session.account_uuid, user_uuid=session.user_uuid,
        expired_date=format_date(session.expired_date),
        create_date=format_date(session.create_date)))


@router.delete("/sessions/{session_uuid}", operation_id="LogOut", response_model=EmptyReply,
               responses=ERROR_RESPONSES, summary="End a session")
async def log_out(session_uuid: str, services: ServicesDep) -> EmptyReply:
    await services.auth.logout(session_uuid)
    return EmptyReply()


@router.get("/sessions/{session_uuid}/valid", operation_id="ValidateSession",
            response_model=ValidateSessionReply, responses=ERROR_RESPONSES,
            summary="Whether a session exists and has not expired")
async def validate_session(session_uuid: str, services: ServicesDep) -> ValidateSessionReply:
    return ValidateSessionReply(valid=await services.auth.is_valid(session_uuid))
