"""Runs: one command on many VMs (``/zstack/v1/vm-instances/commands/runs``).

- ``POST`` StartGuestVmCommandRun: ``202`` with the run's job ``location`` (the run's uuid is
  the job's, ``X-Job-UUID`` names it); the job's reply is the run's inventory once it ended.
- ``GET`` QueryGuestVmCommandRun, ``GET /{uuid}`` (with its targets),
  ``GET /{uuid}/events`` (Server-Sent Events), ``PUT /{uuid}/actions``
  (``{"cancelGuestVmCommandRun": {}}``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from vmexec.api.convert import exec_request
from vmexec.api.deps import AuthDep, ServicesDep, caller_of
from vmexec.api.errors import ApiFailure, bad_request, not_found
from vmexec.api.observe import note
from vmexec.api.routes.exec import job_location, job_uuid_of, webhook_of
from vmexec.api.schemas.common import ERROR_RESPONSES, ErrorReply, WireModel
from vmexec.api.schemas.inventory import (
    Count,
    Fields,
    Limit,
    Q,
    ReplyWithCount,
    Sort,
    Start,
)
from vmexec.api.schemas.runs import (
    QueryGuestVmCommandRunReply,
    RunActionRequest,
    RunReply,
    StartGuestVmCommandRunRequest,
)
from vmexec.services.run_events import RunEvent
from vmexec.services.run_targets import TargetSpec
from vmexec.services.runs import RunNotFound, RunRequest
from vmexec.zstack.inventories import RUN_FIELDS, kinds
from vmexec.zstack.query import parse_query
from vmexec.zstack.runs import CANCEL_ACTION

PATH = "/zstack/v1/vm-instances/commands/runs"
#: Seconds between keep-alive comments on an idle event stream.
KEEP_ALIVE_SECONDS = 15

router = APIRouter(prefix=PATH, tags=["vm-instances"])
_KINDS = kinds(RUN_FIELDS)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorReply, "description": "no such run, or another account's (SYS.1003)"},
}


class RunAccepted(WireModel):
    """``202``: the run started; poll ``location`` for its inventory once it ended."""

    location: str
    uuid: str


def _not_found(exc: RunNotFound) -> ApiFailure:
    return not_found(exc.message)


@router.post("", operation_id="StartGuestVmCommandRun", status_code=202,
             response_model=RunAccepted, responses=ERROR_RESPONSES,
             summary="Run a command on many VMs (a job: poll location)")
async def start_run(http: Request, body: StartGuestVmCommandRunRequest, services: ServicesDep,
                    session: AuthDep) -> JSONResponse:
    """Targets are resolved once, now: an unknown VM, a bad condition, bad limits or an empty
    target set are errors and nothing starts. Headers: ``X-Job-UUID``, ``X-Web-Hook``."""
    params = body.params
    run = RunRequest(
        request=exec_request(params),
        targets=TargetSpec(
            vm_uuids=(tuple(params.targets.vm_instance_uuids)
                      if params.targets.vm_instance_uuids is not None else None),
            conditions=(tuple(params.targets.conditions)
                        if params.targets.conditions is not None else None)),
        max_concurrency=params.max_concurrency, max_errors=params.max_errors)
    uuid = job_uuid_of(http.headers)
    note(http.scope, resource_uuid=uuid)  # the audit names the run
    await services.runs.start(caller_of(session), run, uuid=uuid, webhook=webhook_of(http.headers))
    return JSONResponse(RunAccepted(location=job_location(http, uuid), uuid=uuid).wire(),
                        status_code=202)


@router.get("", operation_id="QueryGuestVmCommandRun", responses=ERROR_RESPONSES,
            response_model=QueryGuestVmCommandRunReply, summary="Query runs")
async def query_runs(request: Request, services: ServicesDep, session: AuthDep,
                     q: Q = None, limit: Limit = None, start: Start = None,
                     count: Count = None, reply_with_count: ReplyWithCount = None,
                     sort: Sort = None, fields: Fields = None) -> JSONResponse:
    """ZStack's query semantics over the caller's runs (newest last unless sorted); each
    inventory has ``targetCounts`` (unless ``fields`` is given). Unknown fields and values of
    the wrong kind: ``503 SYS.1007``; malformed conditions: ``400``."""
    query = parse_query(request.query_params.multi_items(), _KINDS)
    return JSONResponse(await services.runs.query(caller_of(session), query))


@router.get("/{uuid}", operation_id="GetGuestVmCommandRun",
            responses={**ERROR_RESPONSES, **_NOT_FOUND},
            summary="One run, with its targets and counts per target state")
async def get_run(uuid: str, services: ServicesDep, session: AuthDep) -> JSONResponse:
    """``{"inventories": [run]}``: the run's fields, ``targetCounts`` and ``targets`` (each
    with its execution's uuid, state, exit code and output sizes)."""
    try:
        inventory = await services.runs.get(caller_of(session), uuid)
    except RunNotFound as exc:
        raise _not_found(exc) from None
    return JSONResponse({"inventories": [inventory]})


@router.put("/{uuid}/actions", operation_id="CancelGuestVmCommandRun",
            response_model=RunReply, responses={**ERROR_RESPONSES, **_NOT_FOUND},
            summary="Cancel a run: skip its pending targets, cancel its running ones")
async def run_action(uuid: str, body: RunActionRequest, services: ServicesDep,
                     session: AuthDep) -> JSONResponse:
    """``{"cancelGuestVmCommandRun": {}}``: waits (up to 20 s) for the run to end and answers
    its inventory. A run that has ended is left as it is (idempotent)."""
    unknown = sorted(body.model_extra or {})
    if body.cancel_guest_vm_command_run is None:
        raise bad_request(
            "the body does not name a known action of /vm-instances/commands/runs/{uuid}/"
            f"actions: got {unknown or 'no action'}, known actions: [{CANCEL_ACTION!r}]")
    if unknown:
        raise bad_request(f"one action per request: {CANCEL_ACTION} together with {unknown}")
    try:
        inventory = await services.runs.cancel(caller_of(session), uuid)
    except RunNotFound as exc:
        raise _not_found(exc) from None
    return JSONResponse({"inventory": inventory})


@router.get("/{uuid}/events", operation_id="GetGuestVmCommandRunEvents",
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Server-Sent Events"},
                       **ERROR_RESPONSES, **_NOT_FOUND},
            summary="A run's events, live: targets starting, output, targets ending")
async def run_events(uuid: str, services: ServicesDep, session: AuthDep) -> EventSourceResponse:
    """Events (``data`` is JSON): ``targetStarted`` {vmInstanceUuid, vmInstanceName,
    executionUuid}; ``output`` {vmInstanceUuid, executionUuid, stream, text}, between its
    target's start and end; ``targetFinished`` {vmInstanceUuid, executionUuid, state,
    exitCode, errorCode}; then ``runFinished`` {inventory} and the stream ends. A client
    that connects later gets the events so far first (output from the stored output)."""
    try:
        events = await services.runs.events(caller_of(session), uuid)
    except RunNotFound as exc:
        raise _not_found(exc) from None
    return EventSourceResponse(_sse(events), ping=KEEP_ALIVE_SECONDS)


async def _sse(events: AsyncIterator[RunEvent]) -> AsyncIterator[ServerSentEvent]:
    async for event in events:
        yield ServerSentEvent(json.dumps(event.data, separators=(",", ":")), event=event.kind)
