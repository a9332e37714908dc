"""QueryAudit: the audit trail of state-changing API calls, for admins (``q=`` as elsewhere)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from vmexec.api.deps import AdminDep, ServicesDep
from vmexec.api.schemas.common import ERROR_RESPONSES
from vmexec.api.schemas.inventory import (
    Count,
    Fields,
    Limit,
    Q,
    QueryAuditReply,
    ReplyWithCount,
    Sort,
    Start,
)
from vmexec.zstack.dates import format_date
from vmexec.zstack.inventories import AUDIT_FIELDS, kinds
from vmexec.zstack.query import parse_query

router = APIRouter(prefix="/zstack/v1/audits", tags=["audit"])
_KINDS = kinds(AUDIT_FIELDS)


def _wire(values: dict[str, Any]) -> dict[str, Any]:
    return {key: format_date(value) if isinstance(value, datetime) else value
            for key, value in values.items() if value is not None}


async def _query(request: Request, services: ServicesDep, uuid: str | None) -> JSONResponse:
    query = parse_query(request.query_params.multi_items(), _KINDS)
    result = await services.audit.query(query, uuid)
    reply: dict[str, Any] = {}
    if not query.count:
        reply["inventories"] = [_wire(r) for r in result.records]
    if result.total is not None:
        reply["total"] = result.total
    return JSONResponse(reply)


@router.get("", operation_id="QueryAudit", response_model=QueryAuditReply,
            responses=ERROR_RESPONSES, summary="Query the audit trail (admins)")
async def query_audits(request: Request, services: ServicesDep, _admin: AdminDep,
                       q: Q = None, limit: Limit = None, start: Start = None,
                       count: Count = None, reply_with_count: ReplyWithCount = None,
                       sort: Sort = None, fields: Fields = None) -> JSONResponse:
    """Every state-changing call (any method but GET): who (``accountName``, ``credential``),
    from where (``clientAddress``), what (``method``, ``route``, ``apiName``,
    ``resourceUuid``), the result (``status``, ``errorCode``) and when (``createDate``).
    Evaluated in SQL; without ``sort``, oldest first. Not an admin: ``503 ID.1002``."""
    return await _query(request, services, None)


@router.get("/{uuid}", operation_id="QueryAuditByUuid", response_model=QueryAuditReply,
            responses=ERROR_RESPONSES, summary="One audit entry (admins)")
async def query_audit(uuid: str, request: Request, services: ServicesDep, _admin: AdminDep,
                      fields: Fields = None) -> JSONResponse:
    return await _query(request, services, uuid)
