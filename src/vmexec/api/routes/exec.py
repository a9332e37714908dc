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
from collections.abc import Awaitable, Mapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers

from vmexec.api.convert import (
    exec_request,
    partial_output,
    request_from_json,
    request_to_json,
    result_reply,
)
from vmexec.api.deps import AuthDep, ServicesDep
from vmexec.api.errors import api_error, invalid_argument, to_failure
from vmexec.api.replies import job_response
from vmexec.api.schemas.common import ERROR_RESPONSES
from vmexec.api.schemas.exec import (
    AsyncReply,
    ExecuteGuestVmCommandReply,
    ExecuteGuestVmCommandRequest,
)
from vmexec.api.services import Services
from vmexec.execution.models import ExecRequest, ExecResult
from vmexec.services.executions import Caller, VmRef
from vmexec.services.jobs import JobReply, Resumer
from vmexec.zstack.errors import Code
from vmexec.zstack.ids import is_uuid, new_uuid

API = "ExecuteGuestVmCommand"
PATH = "/zstack/v1/vm-instances/commands/exec"
#: Beyond the command's own timeout, how long vmexec waits for the engine before giving up
#: (the engine enforces the timeout itself; this only guards against a stuck guest agent).
GRACE_SECONDS = 30

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
    """The ``X-Web-Hook`` URL, if any. Raises ApiFailure (SYS.1007) when it is not http(s)."""
    url = headers.get("x-web-hook")
    if url is None:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_argument(f"X-Web-Hook[{url}] is not an http(s) URL")
    return url.strip()


def _location(request: Request, job_uuid: str) -> str:
    host = request.headers.get("host") or request.url.netloc
    return f"{request.url.scheme}://{host}/zstack/v1/api-jobs/{job_uuid}"


async def _reply_for(services: Services, job_uuid: str, vm_uuid: str, request: ExecRequest,
                     result: ExecResult) -> JobReply:
    record = (services.executions.finished(job_uuid, result),)
    if result.timed_out:
        error = api_error(
            Code.VM_EXEC_TIMED_OUT,
            f"the command did not finish within {request.timeout:g}s and was stopped",
            opaque=partial_output(result))
        return JobReply(error.status, error.body(), record)
    try:
        inventory = await services.inventory.inventory(vm_uuid)
    except Exception:  # the VM vanished since: the result still stands
        inventory = {"uuid": vm_uuid}
    return JobReply(200, result_reply(result, inventory).wire(), record)


def _failure(services: Services, job_uuid: str, exc: BaseException) -> JobReply:
    error = to_failure(exc)
    return JobReply(error.status, error.body(),
                     (services.executions.failed(job_uuid, error.code, error.details),))


async def _finish(services: Services, job_uuid: str, vm_uuid: str, request: ExecRequest,
                  run: Awaitable[ExecResult]) -> JobReply:
    """Await ``run`` (the engine call) and turn its outcome into the job's reply, with the
    execution record's end to be stored with it."""
    try:
        async with asyncio.timeout(request.timeout + GRACE_SECONDS):
            result = await run
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        return _failure(services, job_uuid, TimeoutError(
            f"no result from the guest agent {request.timeout + GRACE_SECONDS:g}s after start"))
    except Exception as exc:
        return _failure(services, job_uuid, exc)
    return await _reply_for(services, job_uuid, vm_uuid, request, result)


async def _run(services: Services, job_uuid: str, vm: VmRef, request: ExecRequest) -> JobReply:
    return await _finish(services, job_uuid, vm.uuid, request,
                         services.executions.run(job_uuid, vm, request))


def resumer(services: Services) -> Resumer:
    """The job resumer for this API: collects the result of a command started before vmexec
    restarted (the engine finds it in the guest by its run id, the job UUID). The command
    cannot outlive its own timeout, so that bounds the wait."""
    async def resume(job_uuid: str, stored: Mapping[str, Any]) -> JobReply:
        request = request_from_json(stored["request"])
        vm_uuid = str(stored["vmInstanceUuid"])
        try:
            vm = await services.inventory.resolve(vm_uuid)
        except Exception as exc:
            return _failure(services, job_uuid, exc)
        return await _finish(services, job_uuid, vm_uuid, request, services.executions.recover(
            job_uuid, vm, request, timeout=request.timeout))
    return resume


async def _execute(http: Request, body: ExecuteGuestVmCommandRequest, services: Services,
                   caller: Caller, default_window: float | None) -> JSONResponse:
    params = body.params
    request = exec_request(params)
    job_uuid = job_uuid_of(http.headers)
    webhook = webhook_of(http.headers)
    window, applied = wait_window(http.headers, default_window, webhook)
    vm = await services.inventory.resolve(params.vm_instance_uuid)
    task = await services.jobs.start(
        uuid=job_uuid, api=API, account_uuid=caller.account_uuid, webhook=webhook,
        request={"vmInstanceUuid": vm.uuid, "request": request_to_json(request)},
        work=lambda: _run(services, job_uuid, vm, request),
        writes=[services.executions.recorded(job_uuid, caller, vm.uuid, request)])
    headers = {"Preference-Applied": applied} if applied else {}
    if window is None or window > 0:
        # asyncio.wait, not await: a client that goes away must not cancel the job.
        await asyncio.wait({task}, timeout=window)
    if task.done() and not task.cancelled():
        return job_response(task.result(), http, headers)
    api_timeout_ms = int((request.timeout + GRACE_SECONDS) * 1000)
    return JSONResponse(AsyncReply(location=_location(http, job_uuid),
                                   api_timeout=api_timeout_ms).wire(),
                        status_code=202, headers=headers)


_DOC = """Run a command (a script) in the VM's guest through the QEMU guest agent.

A command that ran is a success whatever its exit code (`exitCode`); a timeout, a stopped VM,
an unreachable or disabled agent are `503` with an ErrorCode (`VM.EXEC.*`). Headers:
`Prefer: respond-async` / `Prefer: wait=N`, `X-Job-UUID`, `X-Web-Hook`."""


@router.put(PATH, operation_id="ExecuteGuestVmCommand", description=_DOC,
            response_model=ExecuteGuestVmCommandReply, responses=_RESPONSES,
            summary="Run a command in a VM (waits for the result)")
async def execute_put(http: Request, body: ExecuteGuestVmCommandRequest,
                      services: ServicesDep, session: AuthDep) -> JSONResponse:
    return await _execute(http, body, services,
                          Caller(session.account_uuid, session.account_name), None)


@router.post(PATH, operation_id="ExecuteGuestVmCommandAsync", description=_DOC,
             response_model=ExecuteGuestVmCommandReply, responses=_RESPONSES,
             summary="Run a command in a VM (202 + polling after the POST window)")
async def execute_post(http: Request, body: ExecuteGuestVmCommandRequest,
                       services: ServicesDep, session: AuthDep) -> JSONResponse:
    return await _execute(http, body, services,
                          Caller(session.account_uuid, session.account_name),
                          services.settings.post_wait)
