"""``GET /zstack/v1/api-jobs/{uuid}``: the reply of an async API call (QueryApiJob's polling)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from vmexec.api.deps import AuthDep, ServicesDep
from vmexec.api.replies import job_response
from vmexec.api.schemas.common import ERROR_RESPONSES, EmptyReply, ErrorReply

router = APIRouter(prefix="/zstack/v1/api-jobs", tags=["jobs"])


@router.get("/{job_uuid}", operation_id="GetApiJob", summary="Poll an async API call",
            responses={
                200: {"description": "done: the API's own reply"},
                202: {"model": EmptyReply, "description": "still running"},
                404: {"model": ErrorReply, "description": "unknown or expired job (SYS.1003)"},
                **ERROR_RESPONSES,
            })
async def get_job(job_uuid: str, request: Request, services: ServicesDep,
                  session: AuthDep) -> Response:
    """``202 {}`` while running; then the same ``200``/``503`` reply a direct call gets."""
    reply = await services.jobs.reply(job_uuid, session.account_uuid)
    if reply is None:
        return JSONResponse({}, status_code=202)
    return job_response(reply, request)
