"""The one place where every failure of an API call becomes ZStack's answer.

A failed call answers ``{"error": ErrorCode}`` (:class:`vmexec.zstack.errors.ErrorCode`; the
codes and their statuses are listed there). Status codes follow ZStack's REST server: ``503``
for an API that ran and failed (including bad argument *values*, ``SYS.1007``), ``400`` for a
request that cannot be read (malformed JSON, wrong types, missing ``Authorization``), ``404``
for an unknown path or an expired job. vmexec never answers ``500``: an unexpected exception is
``503 SYS.1000``.

Domain errors of the layers below (services, jobs, auth, the exec engine, the query language)
are mapped to codes here and nowhere else.
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

from vmexec.db.outages import is_outage
from vmexec.execution import errors as exec_errors
from vmexec.services import auth, jobs
from vmexec.services import errors as service_errors
from vmexec.services.executions import QgaDisabled
from vmexec.zstack.errors import Code, ErrorCode
from vmexec.zstack.query import QueryError

log = logging.getLogger(__name__)


class ApiFailure(Exception):
    """A failed API call: the :class:`ErrorCode` to answer, with HTTP ``status``."""

    def __init__(self, status: int, error: ErrorCode,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(str(error))
        self.status = status
        self.error = error
        #: HTTP headers of the answer (e.g. ``Retry-After``).
        self.headers = dict(headers or {})

    @property
    def code(self) -> str:
        return self.error.code

    @property
    def details(self) -> str | None:
        return self.error.details

    def body(self) -> dict[str, Any]:
        return {"error": self.error.to_json()}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def api_error(code: Code, details: str | None = None, *, status: int = 503,
              opaque: Mapping[str, Any] | None = None) -> ApiFailure:
    """An :class:`ApiFailure` for one of vmexec's codes, with its standard description."""
    return ApiFailure(status, ErrorCode.of(code, details, opaque=opaque))


def invalid_argument(details: str) -> ApiFailure:
    """A bad argument value: ``503 SYS.1007``, as ZStack's API interceptors answer."""
    return api_error(Code.SYS_INVALID_ARGUMENT, details)


def bad_request(details: str) -> ApiFailure:
    """A request that cannot be read (malformed JSON, wrong types, no session header): ``400``."""
    return api_error(Code.SYS_INVALID_ARGUMENT, details, status=400)


def not_found(details: str) -> ApiFailure:
    """An unknown or expired resource addressed by path (e.g. an async job): ``404 SYS.1003``."""
    return api_error(Code.SYS_RESOURCE_NOT_FOUND, details, status=404)


# --- domain errors -> ApiFailure: the one mapping -----------------------------------------
_UNAVAILABLE_CODES: Mapping[exec_errors.UnavailableReason, Code] = {
    exec_errors.UnavailableReason.VM_NOT_RUNNING: Code.VM_EXEC_VM_NOT_RUNNING,
    exec_errors.UnavailableReason.VM_PAUSED: Code.VM_EXEC_VM_NOT_RUNNING,
    exec_errors.UnavailableReason.NO_AGENT_CHANNEL: Code.VM_EXEC_AGENT_UNAVAILABLE,
    exec_errors.UnavailableReason.AGENT_NOT_CONNECTED: Code.VM_EXEC_AGENT_UNAVAILABLE,
    exec_errors.UnavailableReason.AGENT_NOT_RESPONDING: Code.VM_EXEC_AGENT_UNAVAILABLE,
    exec_errors.UnavailableReason.HOST_UNREACHABLE: Code.VM_EXEC_HOST_UNREACHABLE,
}


_FILE_CODES = {
    exec_errors.FileProblem.NOT_FOUND: Code.VM_EXEC_FILE_NOT_FOUND,
    exec_errors.FileProblem.PERMISSION_DENIED: Code.VM_EXEC_FILE_PERMISSION_DENIED,
    exec_errors.FileProblem.DISK_FULL: Code.VM_EXEC_FILE_DISK_FULL,
    exec_errors.FileProblem.IS_DIRECTORY: Code.VM_EXEC_FILE_IS_DIRECTORY,
}


def _exec_failure(exc: exec_errors.ExecError) -> ApiFailure:
    match exc:
        case QgaDisabled():
            return api_error(Code.VM_EXEC_QGA_DISABLED, exc.message)
        case exec_errors.InvalidExecRequest():
            return invalid_argument(exc.message)
        case exec_errors.GuestUnavailable(reason=exec_errors.UnavailableReason.VM_NOT_FOUND):
            return api_error(Code.SYS_RESOURCE_NOT_FOUND, exc.message)
        case exec_errors.GuestUnavailable():
            return api_error(_UNAVAILABLE_CODES.get(exc.reason, Code.VM_EXEC_AGENT_UNAVAILABLE),
                             f"{exc.message} [{exc.reason}]")
        case exec_errors.ExecDisabled():
            return api_error(Code.VM_EXEC_EXEC_DISABLED, exc.message)
        case exec_errors.GuestSetupError():
            return api_error(Code.VM_EXEC_GUEST_SETUP, f"{exc.message} [{exc.reason}]")
        case exec_errors.ResultLost():
            return api_error(Code.VM_EXEC_RESULT_LOST, exc.message)
        case exec_errors.OutputNotStored():
            return api_error(Code.VM_EXEC_OUTPUT_NOT_STORED, exc.message)
        case exec_errors.GuestFileError():
            return api_error(_FILE_CODES.get(exc.problem, Code.VM_EXEC_FILE_FAILED),
                             f"{exc.message} [{exc.problem}]")
    return api_error(Code.SYS_OPERATION_ERROR, exc.message)


def _service_failure(exc: service_errors.ServiceError) -> ApiFailure:
    if isinstance(exc, service_errors.HostUnreachable):
        return api_error(Code.SYS_OPERATION_ERROR, exc.message)
    # NotFound, Conflict, InvalidValue. ZStack checks the resource UUIDs of API arguments
    # before it runs the API: an unknown one is an invalid argument (e.g.
    # ExecuteGuestVmCommand's vmInstanceUuid).
    return invalid_argument(exc.message)


def to_failure(exc: BaseException) -> ApiFailure:
    """The ZStack answer for any exception raised while serving an API call.

    Domain errors get their documented code; anything unexpected is ``SYS.1000``.
    ``CancelledError`` must not be passed here: it is not a failure of the call.
    """
    match exc:
        case ApiFailure():
            return exc
        case exec_errors.ExecError():
            return _exec_failure(exc)
        case service_errors.ExecutionNotFound():
            # Addressed by path, as a job is: not an argument of an API.
            return not_found(exc.message)
        case service_errors.ServiceError():
            return _service_failure(exc)
        case auth.InvalidCredentials():
            return api_error(Code.ID_AUTHENTICATION, exc.message)
        case auth.InvalidSession():
            return api_error(Code.ID_INVALID_SESSION, exc.message)
        case auth.LoginRefused():
            throttled = api_error(Code.ID_LOGIN_THROTTLED, exc.message)
            throttled.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            return throttled
        case auth.PermissionDenied():
            return api_error(Code.ID_PERMISSION_DENIED, exc.message)
        case auth.InvalidAccountUpdate():
            return invalid_argument(exc.message)
        case jobs.DuplicateJob():
            return invalid_argument(exc.message)
        case jobs.JobNotFound():
            return not_found(exc.message)
        case QueryError(malformed=True):
            return bad_request(exc.message)
        case QueryError():
            return invalid_argument(exc.message)
        case TimeoutError():
            return api_error(Code.SYS_TIMEOUT, str(exc) or "timed out")
    if is_outage(exc):
        return _database_away(exc)
    return api_error(Code.SYS_INTERNAL, f"{type(exc).__name__}: {exc}")


#: What a client is told to wait before it retries a call the database could not serve.
DATABASE_RETRY_AFTER = 2


def _database_away(exc: BaseException) -> ApiFailure:
    away = api_error(Code.SYS_OPERATION_ERROR,
                     f"the database cannot be reached or is too busy now; retry in "
                     f"{DATABASE_RETRY_AFTER}s ({type(exc).__name__})")
    away.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
    return away


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


def validation_error(exc: RequestValidationError) -> ApiFailure:
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
async def _on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
    return to_failure(exc).response()


async def _on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_error(exc).response()


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error = api_error(Code.SYS_UNKNOWN_API, f"no API at {request.method} {request.url.path}",
                          status=404)
    elif exc.status_code == 405:
        error = api_error(Code.SYS_UNKNOWN_API,
                          f"method {request.method} is not allowed on {request.url.path}",
                          status=405)
    elif 400 <= exc.status_code < 500:
        error = api_error(Code.SYS_INVALID_ARGUMENT, str(exc.detail), status=exc.status_code)
    else:
        error = api_error(Code.SYS_INTERNAL, str(exc.detail))
    response = error.response()
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    if is_outage(exc):
        # Not a bug: the database is away (restarting, failing over) or saturated.
        log.warning("%s %s: the database is unavailable: %s: %s", request.method,
                    request.url.path, type(exc).__name__, exc)
        return _database_away(exc).response()
    # A bug, not a client error; logged with its traceback, answered as ZStack answers it.
    log.exception("unexpected error serving a request", exc_info=exc)
    return api_error(Code.SYS_INTERNAL, f"{type(exc).__name__}: {exc}").response()


def install_error_handlers(app: FastAPI) -> None:
    """Make every failure of ``app`` answer in ZStack's error format."""
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    for domain_error in (ApiFailure, exec_errors.ExecError, service_errors.ServiceError,
                         auth.AuthError, jobs.JobError, QueryError):
        app.add_exception_handler(domain_error, _on_domain_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unexpected)
