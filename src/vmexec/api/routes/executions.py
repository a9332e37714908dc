"""Executions: QueryGuestVmCommandExecution, one execution with its output, its live output
as Server-Sent Events, and CancelGuestVmCommand (the action endpoint).

An execution of another account is "not found" (an admin sees all). Every failure before a
stream starts is ZStack's error JSON, not an event stream.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from vmexec.api.deps import AuthDep, ServicesDep, caller_of
from vmexec.api.errors import bad_request, invalid_argument
from vmexec.api.schemas.common import ERROR_RESPONSES, ErrorReply
from vmexec.api.schemas.exec import OutputEncoding
from vmexec.api.schemas.executions import (
    OFFSET_PATTERN,
    OUTPUT_EVENTS_DOC,
    ExecutionActionRequest,
    ExecutionUuid,
    GetGuestVmCommandExecutionReply,
    GuestVmCommandExecutionReply,
    LastEventId,
    OutputEncodingQuery,
    QueryGuestVmCommandExecutionReply,
)
from vmexec.api.schemas.inventory import Count, Fields, Limit, Q, ReplyWithCount, Sort, Start
from vmexec.api.services import Services
from vmexec.services.errors import ExecutionNotFound
from vmexec.services.execution_records import COLUMNS
from vmexec.zstack.exec import chunk_data
from vmexec.zstack.ids import is_uuid
from vmexec.zstack.query import parse_query

PATH = "/zstack/v1/vm-instances/commands/executions"
#: How long the cancel action waits for the command to end before it answers.
CANCEL_WAIT_SECONDS = 20.0
#: Keep-alive comments on the event stream, in seconds.
PING_SECONDS = 15
#: How often the end's reply is looked for when the end is not committed yet.
RESULT_POLL_SECONDS = 0.2

router = APIRouter(prefix=PATH, tags=["vm-instances"])
_KINDS = {name: column.kind for name, column in COLUMNS.items()}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorReply, "description": "no such execution (or another account's): "
                                              "SYS.1003"},
    **ERROR_RESPONSES,
}


def _checked(uuid: str) -> str:
    if not is_uuid(uuid):
        raise invalid_argument(f"execution uuid[{uuid}] is not a UUID of 32 hex characters")
    return uuid.lower()


@router.get("", operation_id="QueryGuestVmCommandExecution", responses=ERROR_RESPONSES,
            response_model=QueryGuestVmCommandExecutionReply,
            summary="Query executions (commands run in VMs)")
async def query_executions(request: Request, services: ServicesDep, session: AuthDep,
                           q: Q = None, limit: Limit = None, start: Start = None,
                           count: Count = None, reply_with_count: ReplyWithCount = None,
                           sort: Sort = None, fields: Fields = None) -> JSONResponse:
    """The caller's executions (an admin's: everyone's). Unknown fields in ``q``/``sort``/
    ``fields``, values of the wrong kind and a like (``~=``) on a date: ``503 SYS.1007``;
    malformed conditions and non-integer ``limit``/``start``: ``400``."""
    query = parse_query(request.query_params.multi_items(), _KINDS)
    return JSONResponse(await services.executions.query(caller_of(session), query))


@router.get("/{uuid}", operation_id="GetGuestVmCommandExecution", responses=_NOT_FOUND,
            response_model=GetGuestVmCommandExecutionReply,
            summary="One execution, with its output")
async def get_execution(uuid: ExecutionUuid, services: ServicesDep, session: AuthDep,
                        output_encoding: OutputEncodingQuery = None) -> JSONResponse:
    """``{"inventories": [execution + stdout + stderr]}``, with ``stdoutBase64``/
    ``stderrBase64`` for a stream that is not UTF-8 (both with ``outputEncoding=base64``);
    unknown: ``404 SYS.1003``."""
    inventory = await services.executions.inventory(
        caller_of(session), _checked(uuid),
        always_base64=output_encoding is OutputEncoding.BASE64)
    return JSONResponse({"inventories": [inventory]})


def _offset(last_event_id: str | None) -> int:
    if last_event_id is None or not last_event_id.strip():
        return 0
    if not re.fullmatch(OFFSET_PATTERN, last_event_id):
        raise bad_request(f"Last-Event-ID[{last_event_id}] is not a byte offset (a "
                          "non-negative integer, an event's id)")
    return int(last_event_id.strip())


async def _events(services: Services, uuid: str, after: int) -> AsyncIterator[ServerSentEvent]:
    position = after
    async for chunk in services.executions.output.follow(uuid, after):
        position = chunk.end
        yield ServerSentEvent(data=json.dumps(chunk_data(chunk.data)),
                              event=str(chunk.stream), id=str(chunk.end))
    try:
        reply = await services.executions.result(uuid)
        while reply is None:  # ended here, its end not committed yet (a resumed job's)
            await asyncio.sleep(RESULT_POLL_SECONDS)
            reply = await services.executions.result(uuid)
    except ExecutionNotFound:
        return  # purged meanwhile: nothing more to tell
    total = max(position, await services.executions.output.size(uuid))
    yield ServerSentEvent(data=json.dumps({"status": reply.status, "body": reply.body}),
                          event="result", id=str(total))


@router.get("/{uuid}/output", operation_id="GetGuestVmCommandExecutionOutput",
            description=OUTPUT_EVENTS_DOC, response_class=EventSourceResponse,
            summary="The execution's output, live (Server-Sent Events)",
            responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                             "description": "the event stream"}, **_NOT_FOUND})
async def follow_output(uuid: ExecutionUuid, services: ServicesDep, session: AuthDep,
                        last_event_id: LastEventId = None) -> EventSourceResponse:
    after = _offset(last_event_id)
    record = await services.executions.get(caller_of(session), _checked(uuid))
    return EventSourceResponse(_events(services, record.uuid, after), ping=PING_SECONDS)


@router.put("/{uuid}/actions", operation_id="GuestVmCommandExecutionAction",
            response_model=GuestVmCommandExecutionReply, responses=_NOT_FOUND,
            summary="ZStack's action endpoint: the body's one key names the action "
                    "(cancelGuestVmCommand)")
async def execution_action(uuid: ExecutionUuid, body: ExecutionActionRequest,
                           services: ServicesDep, session: AuthDep) -> JSONResponse:
    """``{"cancelGuestVmCommand": {}}`` stops the command and its process tree in the guest
    and waits (at most 20 s) for it to end: ``{"inventory": execution}``, state
    ``Cancelled`` with the output so far. An execution that has ended is answered as it is.
    No known action in the body: ``400``; unknown execution: ``404 SYS.1003``."""
    unknown = sorted(body.model_extra or {})
    if body.cancel_guest_vm_command is None:
        raise bad_request(
            "the body does not name a known action of /executions/{uuid}/actions: "
            f"got {unknown or 'no action'}, known actions: ['cancelGuestVmCommand']")
    if unknown:
        raise bad_request(f"one action per request: cancelGuestVmCommand together with "
                          f"{unknown}")
    caller = caller_of(session)
    uuid = _checked(uuid)
    await services.executions.cancel(caller, uuid)
    await services.executions.wait(uuid, CANCEL_WAIT_SECONDS)
    inventory = await services.executions.inventory(caller, uuid, output=False)
    return JSONResponse({"inventory": inventory})
