"""Every API call, seen once on its way out (pure ASGI middleware, outermost but for
Starlette's own error handler): one log line, the API metrics, and an audit entry when the call
may change state (any method but GET, HEAD, OPTIONS).

What it records comes from the request's scope, never from its body (bodies carry passwords,
stdin, environments, webhook credentials) nor its raw path (LogOut's carries the session
token): the route's template, the caller a route's session check left in the scope
(:data:`~vmexec.api.deps.CHECKED_SESSION`), what routes noted with :func:`note` (the account
a login is for; the resource a call is about when the path does not name it), the client
address, the status, and the ZStack error code read from the head of an error answer. Calls
answered before routing (a refused session, a body over its limit) are matched to their route
here, so they are audited too.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vmexec.api.deps import CHECKED_SESSION
from vmexec.api.log_redaction import SECRET_PATH_PARAMETERS, redact_path
from vmexec.services.audit import AuditEntry
from vmexec.services.auth import AuthSession, token_hash
from vmexec.zstack.errors import Code
from vmexec.zstack.ids import is_uuid

#: The logger of the one line per API call (``extra`` carries the fields; see vmexec.logs).
API_LOG = "vmexec.api"
api_log = logging.getLogger(API_LOG)

#: Methods that change nothing: not audited.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Probes a load balancer or Prometheus sends every few seconds: logged at DEBUG only.
QUIET_ROUTES = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})
#: The scope key of what routes note for the audit (:func:`note`).
NOTES = "vmexec.audit"
#: Bytes of an error answer read for its code (ZStack's ``{"error": {"code": ...`` comes first).
_ERROR_HEAD = 4096
_ERROR_CODE = re.compile(rb'"code"\s*:\s*"([A-Za-z0-9.]{1,32})"')


@dataclass(slots=True)
class Notes:
    """What a route tells the audit beyond what the scope says."""

    account_name: str | None = None
    resource_uuid: str | None = None


def note(scope: Scope, *, account_name: str | None = None,
         resource_uuid: str | None = None) -> None:
    """Tell the audit the account a call is for (a login) or the resource it is about."""
    notes = scope.setdefault(NOTES, Notes())
    if account_name is not None:
        notes.account_name = account_name
    if resource_uuid is not None:
        notes.resource_uuid = resource_uuid


@dataclass(slots=True)
class _Answer:
    status: int = 0
    head: bytearray = field(default_factory=bytearray)

    def error_code(self) -> str | None:
        if self.status < 400:
            return None
        match = _ERROR_CODE.search(self.head)
        return match.group(1).decode() if match else None


class ObserveCalls:
    """The middleware (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = _Answer()

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer.status = message["status"]
            elif (message["type"] == "http.response.body" and answer.status >= 400
                  and len(answer.head) < _ERROR_HEAD):
                answer.head += message.get("body", b"")[:_ERROR_HEAD - len(answer.head)]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            # Starlette's outermost handler answers it: ZStack's 503 SYS.1000.
            answer.status = answer.status or 503
            answer.head = bytearray(f'"code":"{Code.SYS_INTERNAL}"'.encode())
            raise
        finally:
            try:
                _observed(scope, answer, time.perf_counter() - started)
            except Exception:  # seeing a call must never break it
                api_log.exception("recording an API call failed")


def _observed(scope: Scope, answer: _Answer, seconds: float) -> None:
    services = getattr(scope["app"].state, "services", None)
    method = scope["method"]
    route = _route(scope)
    template = route.template if route is not None else None
    session = scope.get(CHECKED_SESSION)
    notes: Notes = scope.get(NOTES) or Notes()
    client = scope.get("client")
    address = client[0] if client else None
    code = answer.error_code()
    account = session.account_name if isinstance(session, AuthSession) else notes.account_name
    fields: dict[str, Any] = {
        "event": "api", "method": method, "route": template,
        "path": None if template else redact_path(scope["path"]), "status": answer.status,
        "errorCode": code, "durationMs": round(seconds * 1000, 1), "account": account,
        "client": address,
    }
    api_log.log(logging.DEBUG if template in QUIET_ROUTES else logging.INFO,
                "%s %s %s %.1fms", method, template or fields["path"], answer.status,
                seconds * 1000, extra={"fields": fields})
    if services is None:
        return  # not started (or a test app without services)
    services.metrics.api_call(method, template or "unmatched", answer.status, seconds)
    if method in SAFE_METHODS or route is None:
        return
    services.audit.record(AuditEntry(
        method=method, route=route.template, status=answer.status,
        duration_ms=round(seconds * 1000), api_name=route.operation_id,
        account_uuid=session.account_uuid if isinstance(session, AuthSession) else None,
        account_name=account,
        credential=credential_of(session) if isinstance(session, AuthSession) else None,
        client_address=address,
        resource_uuid=notes.resource_uuid or _resource(route.params), error_code=code))


def credential_of(session: AuthSession) -> str:
    """Which credential a call used, never the credential itself: ``accesskey:<key uuid>``
    for a request signed with an access key, else ``session:<the first 16 hex digits of the
    token's SHA-256>`` (the start of the ``sessions`` table's key)."""
    # access_key_uuid arrives with access keys (issue 13's accounts part).
    key = getattr(session, "access_key_uuid", None)
    if key:
        return f"accesskey:{key}"
    return f"session:{token_hash(session.uuid)[:16]}"


@dataclass(frozen=True, slots=True)
class _Route:
    template: str
    operation_id: str | None
    params: dict[str, str]


@dataclass(frozen=True, slots=True)
class _Operation:
    method: str
    pattern: re.Pattern[str]
    template: str
    operation_id: str | None


_TABLE = "vmexec.observe.routes"
_PARAMETER = re.compile(r"\\\{([A-Za-z_][A-Za-z0-9_]*)\\\}")


def _operations(app: Any) -> list[_Operation]:
    """The app's APIs, from its OpenAPI document (the one public list of them), literal
    paths first as the router tries them (``/accounts/login`` before ``/accounts/{uuid}``)."""
    table: list[_Operation] | None = getattr(app.state, _TABLE, None)
    if table is None:
        table = []
        for path, operations in app.openapi().get("paths", {}).items():
            pattern = re.compile("^" + _PARAMETER.sub(r"(?P<\1>[^/]+)", re.escape(path)) + "$")
            table += [_Operation(method.upper(), pattern, path, operation.get("operationId"))
                      for method, operation in operations.items()]
        table.sort(key=lambda o: o.template.count("{"))
        setattr(app.state, _TABLE, table)
    return table


def _route(scope: Scope) -> _Route | None:
    """The API a call was for, whether routed or answered before routing; None for paths
    that are no API."""
    method, path = scope["method"], scope["path"]
    for operation in _operations(scope["app"]):
        if operation.method == method and (match := operation.pattern.match(path)):
            return _Route(operation.template, operation.operation_id, match.groupdict())
    return None


def _resource(params: dict[str, str]) -> str | None:
    """The first UUID among the path's parameters that are not secrets."""
    for name, value in params.items():
        if name not in SECRET_PATH_PARAMETERS and is_uuid(value):
            return value.lower()
    return None
