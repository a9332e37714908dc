"""The FastAPI application: routes and ZStack's error handling, nothing else.

The services it serves are built by the composition root (:mod:`vmexec.server`) and put on
``app.state.services`` by the lifespan it passes in.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import Scope

import vmexec
from vmexec.api import errors, log_redaction
from vmexec.api.deps import CHECKED_SESSION, check_credentials
from vmexec.api.limits import DEFAULT_BODY_LIMIT, BodyLimit
from vmexec.api.observe import ObserveCalls
from vmexec.api.page_headers import PageHeaders
from vmexec.api.routes import (
    access_keys,
    accounts,
    audits,
    console,
    executions,
    files,
    health,
    hosts,
    jobs,
    metrics,
    runs,
    sessions,
    vms,
)
from vmexec.api.routes import exec as exec_routes
from vmexec.api.schemas.exec import MAX_BODY_BYTES as EXEC_MAX_BODY_BYTES
from vmexec.api.schemas.runs import MAX_BODY_BYTES as RUN_MAX_BODY_BYTES
from vmexec.execution.files import MAX_FILE_BYTES
from vmexec.services.auth import AuthSession

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

DESCRIPTION = f"""\
Every failure answers ZStack's `{{"error": {{code, description, details}}}}`: `400` for a request
that cannot be read, `503` for an API that ran and failed (`SYS.1007` for a bad value).

**Unknown fields** in request bodies and unknown query parameters are ignored, as ZStack's
servers ignore them, so that clients of newer ZStack versions keep working. The exception is
`PUT /zstack/v1/vm-instances/{{uuid}}/actions`, whose body's one key names the action: a missing
or unknown action is `400`.

**Request bodies** may be at most {DEFAULT_BODY_LIMIT // 1024} KiB, and
{EXEC_MAX_BODY_BYTES} bytes for ExecuteGuestVmCommand (its largest valid request: the longest
command, 1 MiB of stdin and 1 MiB of environment, JSON-escaped); a larger one is `413` before
it is read; a file upload (`PUT /zstack/v1/vm-instances/{{uuid}}/files`) streams, up to
{MAX_FILE_BYTES} bytes. The body of an API that needs a session is read only once the session
is valid.
"""

#: Routes whose valid requests can be larger than the default body limit (64 KiB).
BODY_LIMITS = {
    ("PUT", exec_routes.PATH): EXEC_MAX_BODY_BYTES,
    ("POST", exec_routes.PATH): EXEC_MAX_BODY_BYTES,
    ("POST", runs.PATH): RUN_MAX_BODY_BYTES,
}
#: Routes that read their body as it arrives (a file upload): never held whole in memory.
STREAMED_BODIES = {("PUT", files.PATH_PATTERN): MAX_FILE_BYTES}


async def _check_session(scope: Scope, _authorization: str | None) -> AuthSession:
    # The body limit's session check, before a body is read: the same check as AuthDep
    # (a signed request needs its method, path and Date as well).
    return await check_credentials(scope["app"].state.services, scope["method"],
                                   scope["path"], Headers(scope=scope))


#: The APIs that take a body without a session (LogInByAccount, LogInToConsole). Every other
#: body is read only once the request's session is valid: new APIs need a session unless
#: listed here.
SESSIONLESS_BODIES = frozenset({("PUT", f"{sessions.router.prefix}/login"),
                                ("POST", console.PATH)})


def _needs_session(scope: Scope) -> bool:
    return (scope["method"], scope["path"]) not in SESSIONLESS_BODIES


def assemble(lifespan: Lifespan) -> FastAPI:
    """vmexec's API app; ``lifespan`` must set ``app.state.services``."""
    app = FastAPI(
        title="vmexec",
        version=vmexec.__version__,
        summary="Run commands inside KVM/QEMU guests through the QEMU guest agent, "
                "with ZStack's REST API.",
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served from the package's files by the console's routes, not from a CDN.
        docs_url=None, redoc_url=None,
    )
    errors.install_error_handlers(app)
    app.add_middleware(BodyLimit, limits=BODY_LIMITS, authenticate=_check_session,
                       needs_session=_needs_session, session_key=CHECKED_SESSION,
                       streamed=STREAMED_BODIES)
    app.add_middleware(PageHeaders)
    # Added last, so it runs first: it sees the answers the body limit gives before routing.
    app.add_middleware(ObserveCalls)
    log_redaction.install()
    # accounts after sessions: PUT /accounts/{uuid} must not shadow PUT /accounts/login.
    # executions and runs before vms: /vm-instances/commands/... must not be read as a VM's
    # uuid.
    for module in (health, metrics, sessions, accounts, jobs, exec_routes, executions, runs,
                   files, vms, hosts, access_keys, audits, console):
        app.include_router(module.router)
    app.include_router(accounts.resources_router)
    console.mount_files(app)
    return app
