"""ExecuteGuestVmCommand: ``PUT`` (the documented, synchronous form) and ``POST`` (what ZStack's
SDKs send) on ``/zstack/v1/vm-instances/commands/exec``.

One rule for both methods: the reply is ``200`` with the result when it is ready within the
request's wait window, else ``202`` with the job's ``location``. The window is unbounded for
``PUT``, ``post_wait`` seconds for ``POST``; ``Prefer: respond-async`` makes it 0 and
``Prefer: wait=N`` makes it N (RFC 7240); ``X-Web-Hook`` makes it 0. Every call is a job
(``X-Job-UUID`` names it) and an execution record.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers

from vmexec.api.convert import exec_request
from vmexec.api.deps import AuthDep, ServicesDep, caller_of
from vmexec.api.errors import invalid_argument
from vmexec.api.observe import note
from vmexec.api.replies import job_response
from vmexec.api.schemas.common import ERROR_RESPONSES
from vmexec.api.schemas.exec import (
    AsyncReply,
    ExecuteGuestVmCommandReply,
    ExecuteGuestVmCommandRequest,
)
from vmexec.api.services import Services
from vmexec.services.auth import AuthSession
from vmexec.services.executions import api_timeout
from vmexec.zstack.ids import is_uuid, new_uuid

PATH = "/zstack/v1/vm-instances/commands/exec"

router = APIRouter(tags=["vm-instances"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": AsyncReply, "description": "not finished within the wait window: poll "
                                              "`location`"},
    **ERROR_RESPONSES,
}
_WAIT = re.compile(r"^wait\s*=\s*\"?(\d+)\"?$", re.IGNORECASE)


def wait_window(headers: Headers, default: float | None,
                webhook: str | None) -> tuple[float | None, str | None]:
    """Seconds to wait for the result (None: until done) and the preference applied."""
    if webhook:
        return 0.0, None
    respond_async, wait = False, None
    for header in headers.getlist("prefer"):
        for token in header.split(","):
            token = token.split(";")[0].strip()
            if token.lower() == "respond-async":
                respond_async = True
            elif match := _WAIT.match(token):
                wait = int(match.group(1))
    # RFC 7240 §4.3: with respond-async, wait=N is how long to try for a synchronous reply.
    if wait is not None:
        return float(wait), (f"respond-async, wait={wait}" if respond_async else f"wait={wait}")
    if respond_async:
        return 0.0, "respond-async"
    return default, None


def job_uuid_of(headers: Mapping[str, str]) -> str:
    """The client's ``X-Job-UUID`` (32 hex), or a new one. Raises ApiFailure (SYS.1007)."""
    given = headers.get("x-job-uuid")
    if given is None:
        return new_uuid()
    if not is_uuid(given.strip()):
        raise invalid_argument(f"X-Job-UUID[{given}] is not a UUID of 32 hex characters")
    return given.strip().lower()


def webhook_of(headers: Mapping[str, str]) -> str | None:
    """The ``X-Web-Hook`` URL, if any (the job service checks where it goes)."""
    url = headers.get("x-web-hook")
    return None if url is None else url.strip()


def job_location(request: Request, job_uuid: str) -> str:
    host = request.headers.get("host") or request.url.netloc
    return f"{request.url.scheme}://{host}/zstack/v1/api-jobs/{job_uuid}"


async def _execute(http: Request, body: ExecuteGuestVmCommandRequest, services: Services,
                   session: AuthSession, default_window: float | None) -> Response:
    request = exec_request(body.params)
    caller = caller_of(session)
    if is_uuid(body.params.vm_instance_uuid.strip()):
        note(http.scope, resource_uuid=body.params.vm_instance_uuid.strip().lower())
    job_uuid = job_uuid_of(http.headers)
    webhook = webhook_of(http.headers)
    window, applied = wait_window(http.headers, default_window, webhook)
    task = await services.executions.submit(caller, body.params.vm_instance_uuid, request,
                                            job_uuid=job_uuid, webhook=webhook)
    headers = {"Preference-Applied": applied} if applied else {}
    if window is None or window > 0:
        # asyncio.wait, not await: a client that goes away must not cancel the job.
        await asyncio.wait({task}, timeout=window)
    if task.done() and not task.cancelled():
        return job_response(task.result(), http, headers)
    return JSONResponse(AsyncReply(location=job_location(http, job_uuid),
                                   api_timeout=int(api_timeout(request) * 1000)).wire(),
                        status_code=202, headers=headers)


_DOC = """Run a command (a script) in the VM's guest through the QEMU guest agent.

A command that ran is a success whatever its exit code (`exitCode`); a timeout, a stopped VM,
an unreachable or disabled agent are `503` with an ErrorCode (`VM.EXEC.*`). Headers:
`Prefer: respond-async` / `Prefer: wait=N`, `X-Job-UUID`, `X-Web-Hook`."""


@router.put(PATH, operation_id="ExecuteGuestVmCommand", description=_DOC,
            response_model=ExecuteGuestVmCommandReply, responses=_RESPONSES,
            summary="Run a command in a VM (waits for the result)")
async def execute_put(http: Request, body: ExecuteGuestVmCommandRequest,
                      services: ServicesDep, session: AuthDep) -> Response:
    return await _execute(http, body, services, session, None)


@router.post(PATH, operation_id="ExecuteGuestVmCommandAsync", description=_DOC,
             response_model=ExecuteGuestVmCommandReply, responses=_RESPONSES,
             summary="Run a command in a VM (202 + polling after the POST window)")
async def execute_post(http: Request, body: ExecuteGuestVmCommandRequest,
                       services: ServicesDep, session: AuthDep) -> Response:
    return await _execute(http, body, services, session, services.settings.post_wait)
