"""Turning a stored :class:`~vmexec.services.jobs.JobReply` into the HTTP reply (the same for a
direct answer and for a poll of ``/api-jobs``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from vmexec.api.zstack import VM_INSTANCE_INVENTORY, schema_map, wants_schema
from vmexec.services.jobs import JobReply

#: Top-level reply fields that hold typed ZStack objects, for the ``schema`` map.
TYPED_FIELDS: Mapping[str, str] = {"vmInstance": VM_INSTANCE_INVENTORY}


def with_schema(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` plus ZStack's ``schema`` map of its typed fields (when it has any)."""
    schema: dict[str, str] = {}
    for field, class_name in TYPED_FIELDS.items():
        schema.update(schema_map(field, class_name, body.get(field)))
    return {**body, "schema": schema} if schema else dict(body)


def job_response(reply: JobReply, request: Request,
                 headers: Mapping[str, str] | None = None) -> JSONResponse:
    body = with_schema(reply.body) if reply.success and wants_schema(request.headers) \
        else reply.body
    return JSONResponse(body, status_code=reply.status, headers=dict(headers or {}))
