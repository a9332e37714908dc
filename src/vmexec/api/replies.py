"""Turning a stored :class:`~vmexec.services.jobs.JobReply` into the HTTP reply (the same for a
direct answer and for a poll of ``/api-jobs``)."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import JSONResponse

from vmexec.services.jobs import JobReply
from vmexec.zstack.classes import EXEC_REPLY_TYPED_FIELDS, wants_schema, with_schema


def job_response(reply: JobReply, request: Request,
                 headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = reply.body
    if reply.success and wants_schema(request.headers):
        body = with_schema(body, EXEC_REPLY_TYPED_FIELDS)
    return JSONResponse(body, status_code=reply.status, headers=dict(headers or {}))
