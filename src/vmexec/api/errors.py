"""ZStack's error envelope, and the one place where every failure becomes one.

A failed API call answers ``{"error": ErrorCode}`` with the fields ZStack's ``ErrorCode`` has
(``code, description, details, elaboration, location, cost, cause, opaque``); null fields are
left out, as ZStack's JSON writer does. ``description`` is the fixed text of the code,
``details`` says what happened this time.

Status codes follow ZStack's REST server: ``503`` for an API that ran and failed (including bad
argument *values*, ``SYS.1007``), ``400`` for a request that cannot be read (malformed JSON, wrong
types, missing ``Authorization``), ``404`` for an unknown path or an expired job. vmexec never
answers ``500``: an unexpected exception is ``503 SYS.1000``.

Codes (vmexec-specific ones are ``VM.EXEC.*``)::

    SYS.1000  503  internal error
    SYS.1001  503  timeout (not of a command: of vmexec itself)
    SYS.1003  404  resource not found (async job unknown or expired)
    SYS.1006  503  operation error
    SYS.1007  503  invalid argument value (400 when the request cannot be read at all)
    SYS.1008  404  no API at this path / method
    ID.1000   503  wrong account name or password
    ID.1001   503  invalid or expired session
    ID.1002   503  permission denied (e.g. UpdateAccount of another account)
    ID.1008   503  login refused for now: too many failed logins (of the account or from the
                   address) or too many at once; ``details`` and the ``Retry-After`` header
                   say after how many seconds (vmexec's: ZStack's identity codes stop at 1007)
    VM.EXEC.1001  503  the command timed out; ``opaque`` holds the partial output
    VM.EXEC.1002  503  the VM is not running
    VM.EXEC.1003  503  the guest agent cannot be reached (no channel, not connected, no answer)
    VM.EXEC.1004  503  the guest agent is disabled for this VM (SetVmQga enable=false)
    VM.EXEC.1005  503  guest-exec is disabled inside the guest agent
    VM.EXEC.1006  503  the guest cannot run the command as asked (no shell/user/directory)
    VM.EXEC.1007  503  the command ran but its result was lost
    VM.EXEC.1008  503  the VM's host cannot be reached
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vmexec.execution import errors as exec_errors
from vmexec.services import auth, jobs
from vmexec.services.executions import QgaDisabled

log = logging.getLogger(__name__)

# --- ZStack's own codes (SysErrors, IdentityErrors) ------------------------------------------
SYS_INTERNAL = "SYS.1000"
SYS_TIMEOUT = "SYS.1001"
SYS_RESOURCE_NOT_FOUND = "SYS.1003"
SYS_OPERATION_ERROR = "SYS.1006"
SYS_INVALID_ARGUMENT = "SYS.1007"
SYS_UNKNOWN_API = "SYS.1008"
ID_AUTHENTICATION = "ID.1000"
ID_INVALID_SESSION = "ID.1001"
ID_PERMISSION_DENIED = "ID.1002"
ID_LOGIN_THROTTLED = "ID.1008"

# --- vmexec's codes for ExecuteGuestVmCommand -------------------------------------------------
VM_EXEC_TIMED_OUT = "VM.EXEC.1001"
VM_EXEC_VM_NOT_RUNNING = "VM.EXEC.1002"
VM_EXEC_AGENT_UNAVAILABLE = "VM.EXEC.1003"
VM_EXEC_QGA_DISABLED = "VM.EXEC.1004"
VM_EXEC_EXEC_DISABLED = "VM.EXEC.1005"
VM_EXEC_GUEST_SETUP = "VM.EXEC.1006"
VM_EXEC_RESULT_LOST = "VM.EXEC.1007"
VM_EXEC_HOST_UNREACHABLE = "VM.EXEC.1008"

#: The fixed ``description`` of each code (ZStack's wording where ZStack has the code).
DESCRIPTIONS: Mapping[str, str] = {
    SYS_INTERNAL: "An internal error happened in system",
    SYS_TIMEOUT: "An operation timed out",
    SYS_RESOURCE_NOT_FOUND: "Resource is not found",
    SYS_OPERATION_ERROR: "An operation failed",
    SYS_INVALID_ARGUMENT: "One or more API argument is invalid",
    SYS_UNKNOWN_API: "No such API",
    ID_AUTHENTICATION: "Authentication failed",
    ID_INVALID_SESSION: "Session expired or invalid",
    ID_PERMISSION_DENIED: "Permission denied",
    ID_LOGIN_THROTTLED: "Too many failed logins; retry later",
    VM_EXEC_TIMED_OUT: "The command did not finish within its timeout",
    VM_EXEC_VM_NOT_RUNNING: "The VM is not running",
    VM_EXEC_AGENT_UNAVAILABLE: "The guest agent of the VM cannot be reached",
    VM_EXEC_QGA_DISABLED: "The guest agent is disabled for this VM",
    VM_EXEC_EXEC_DISABLED: "Command execution is disabled in the guest agent",
    VM_EXEC_GUEST_SETUP: "The guest cannot run the command as requested",
    VM_EXEC_RESULT_LOST: "The command ran but its result could not be recovered",
    VM_EXEC_HOST_UNREACHABLE: "The host of the VM cannot be reached",
}


class ApiError(Exception):
    """A failed API call, rendered as ``{"error": ErrorCode}`` with HTTP ``status``.

    ``cause`` is the nested root error (an :class:`ApiError`, or an ErrorCode dict);
    ``opaque`` is free-form structured data (e.g. the partial output of a timed-out command);
    ``headers`` go with the HTTP reply (e.g. ``Retry-After``).
    """

    def __init__(self, status: int, code: str, description: str, details: str | None = None,
                 cause: ApiError | Mapping[str, Any] | None = None,
                 opaque: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(details or description)
        self.status = status
        self.code = code
        self.description = description
        self.details = details
        self.cause = cause
        self.opaque = opaque
        self.headers = dict(headers or {})

    def __str__(self) -> str:
        return f"{self.code} {self.description}" + (f": {self.details}" if self.details else "")

    def error_code(self) -> dict[str, Any]:
        """The ErrorCode JSON object, null fields omitted."""
        body: dict[str, Any] = {"code": self.code, "description": self.description}
        if self.details is not None:
            body["details"] = self.details
        if self.cause is not None:
            body["cause"] = (self.cause.error_code() if isinstance(self.cause, ApiError)
                             else dict(self.cause))
        if self.opaque is not None:
            body["opaque"] = dict(self.opaque)
        return body

    def body(self) -> dict[str, Any]:
        return {"error": self.error_code()}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def api_error(code: str, details: str | None = None, *, status: int = 503,
              opaque: Mapping[str, Any] | None = None,
              cause: ApiError | None = None) -> ApiError:
    """An :class:`ApiError` for one of the codes above, with its standard description."""
    return ApiError(status, code, DESCRIPTIONS.get(code, code), details, cause=cause,
                    opaque=opaque)


def invalid_argument(details: str) -> ApiError:
    """A bad argument value: ``503 SYS.1007``, as ZStack's API interceptors answer."""
    return api_error(SYS_INVALID_ARGUMENT, details)


def bad_request(details: str) -> ApiError:
    """A request that cannot be read (malformed JSON, wrong types, no session header): ``400``."""
    return api_error(SYS_INVALID_ARGUMENT, details, status=400)


def not_found(details: str) -> ApiError:
    """An unknown or expired resource addressed by path (e.g. an async job): ``404 SYS.1003``."""
    return api_error(SYS_RESOURCE_NOT_FOUND, details, status=404)


def resource_not_found(kind: str, uuid: str) -> ApiError:
    """A request argument naming a resource that does not exist: ``503 SYS.1007``.

    ZStack checks resource UUIDs in API arguments before running the API; an unknown one is an
    invalid argument, e.g. ``ExecuteGuestVmCommand`` with an unknown ``vmInstanceUuid``.
    """
    return invalid_argument(f"resource[uuid:{uuid}, type:{kind}] is not found")


def invalid_session(details: str = "the session is invalid or expired") -> ApiError:
    return api_error(ID_INVALID_SESSION, details)


# --- domain errors -> ApiError: the one mapping -------------------------------------------
_UNAVAILABLE_CODES: Mapping[exec_errors.UnavailableReason, str] = {
    exec_errors.UnavailableReason.VM_NOT_RUNNING: VM_EXEC_VM_NOT_RUNNING,
    exec_errors.UnavailableReason.NO_AGENT_CHANNEL: VM_EXEC_AGENT_UNAVAILABLE,
    exec_errors.UnavailableReason.AGENT_NOT_CONNECTED: VM_EXEC_AGENT_UNAVAILABLE,
    exec_errors.UnavailableReason.AGENT_NOT_RESPONDING: VM_EXEC_AGENT_UNAVAILABLE,
    exec_errors.UnavailableReason.HOST_UNREACHABLE: VM_EXEC_HOST_UNREACHABLE,
}


def _exec_error(exc: exec_errors.ExecError) -> ApiError:
    match exc:
        case QgaDisabled():
            return api_error(VM_EXEC_QGA_DISABLED, exc.message)
        case exec_errors.InvalidExecRequest():
            return invalid_argument(exc.message)
        case exec_errors.GuestUnavailable(reason=exec_errors.UnavailableReason.VM_NOT_FOUND):
            return api_error(SYS_RESOURCE_NOT_FOUND, exc.message)
        case exec_errors.GuestUnavailable():
            return api_error(_UNAVAILABLE_CODES.get(exc.reason, VM_EXEC_AGENT_UNAVAILABLE),
                             f"{exc.message} [{exc.reason}]")
        case exec_errors.ExecDisabled():
            return api_error(VM_EXEC_EXEC_DISABLED, exc.message)
        case exec_errors.GuestSetupError():
            return api_error(VM_EXEC_GUEST_SETUP, f"{exc.message} [{exc.reason}]")
        case exec_errors.ResultLost():
            return api_error(VM_EXEC_RESULT_LOST, exc.message)
    return api_error(SYS_OPERATION_ERROR, exc.message)


def to_api_error(exc: BaseException) -> ApiError:
    """The ZStack error for any exception raised while serving an API call.

    Domain errors (exec, auth, jobs) get their documented code; anything unexpected is
    ``SYS.1000``. ``CancelledError`` must not be passed here: it is not a failure of the call.
    """
    match exc:
        case ApiError():
            return exc
        case exec_errors.ExecError():
            return _exec_error(exc)
        case auth.InvalidCredentials():
            return api_error(ID_AUTHENTICATION, exc.message)
        case auth.InvalidSession():
            return invalid_session(exc.message)
        case auth.LoginRefused():
            error = api_error(ID_LOGIN_THROTTLED, exc.message)
            error.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            return error
        case auth.PermissionDenied():
            return api_error(ID_PERMISSION_DENIED, exc.message)
        case auth.InvalidAccountUpdate():
            return invalid_argument(exc.message)
        case jobs.DuplicateJob():
            return invalid_argument(exc.message)
        case jobs.JobNotFound():
            return not_found(exc.message)
        case TimeoutError():
            return api_error(SYS_TIMEOUT, str(exc) or "timed out")
    return api_error(SYS_INTERNAL, f"{type(exc).__name__}: {exc}")


# --- request validation: which pydantic errors are "wrong type" (400) vs "bad value" (503) ----
_VALUE_ERROR_TYPES = frozenset({
    "missing", "string_too_short", "string_too_long", "too_short", "too_long",
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of",
    "literal_error", "enum", "string_pattern_mismatch", "value_error", "assertion_error",
    "finite_number",
})


def _location(loc: tuple[Any, ...]) -> str:
    # ("body", "params", "commandTimeout") -> "params.commandTimeout": the field as sent.
    fields = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc
    return ".".join(map(str, fields)) or ".".join(map(str, loc)) or "request"


def validation_error(exc: RequestValidationError) -> ApiError:
    """Map FastAPI's request validation failure to ZStack's answer.

    Malformed JSON, a missing body and values of the wrong JSON type are ``400`` (the request
    cannot be read); values of the right type that break a rule are ``503 SYS.1007``.
    """
    errors = list(exc.errors())
    messages = [f"field[{_location(tuple(e.get('loc', ())))}]: {e.get('msg', 'invalid')}"
                for e in errors]
    details = "; ".join(messages) or "invalid request"
    unreadable = any(
        e.get("type") not in _VALUE_ERROR_TYPES
        or tuple(e.get("loc", ())) == ("body",)  # no body at all
        for e in errors)
    return bad_request(details) if unreadable else invalid_argument(details)


# --- handlers -------------------------------------------------------------------------------
async def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    return to_api_error(exc).response()


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_error(exc).response()


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error = api_error(SYS_UNKNOWN_API, f"no API at {request.method} {request.url.path}",
                          status=404)
    elif exc.status_code == 405:
        error = api_error(SYS_UNKNOWN_API,
                          f"method {request.method} is not allowed on {request.url.path}",
                          status=405)
    elif 400 <= exc.status_code < 500:
        error = api_error(SYS_INVALID_ARGUMENT, str(exc.detail), status=exc.status_code)
    else:
        error = api_error(SYS_INTERNAL, str(exc.detail))
    response = error.response()
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # A bug, not a client error; logged with its traceback, answered as ZStack answers it.
    log.exception("unexpected error serving a request", exc_info=exc)
    return api_error(SYS_INTERNAL, f"{type(exc).__name__}: {exc}").response()


def install_error_handlers(app: FastAPI) -> None:
    """Make every failure of ``app`` answer in ZStack's error format."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(exec_errors.ExecError, _on_domain_error)
    app.add_exception_handler(auth.AuthError, _on_domain_error)
    app.add_exception_handler(jobs.JobError, _on_domain_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)
