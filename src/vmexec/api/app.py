"""The FastAPI application: routes and ZStack's error handling, nothing else.

The services it serves are built by the composition root (:mod:`vmexec.server`) and put on
``app.state.services`` by the lifespan it passes in.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from starlette.types import Scope

import vmexec
from vmexec.api import errors
from vmexec.api.deps import authenticate
from vmexec.api.limits import BodyLimit
from vmexec.api.routes import exec as exec_routes
from vmexec.api.routes import health, hosts, jobs, sessions, vms
from vmexec.api.schemas.exec import MAX_BODY_BYTES as EXEC_MAX_BODY_BYTES

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

#: Routes whose valid requests can be larger than the default body limit (64 KiB).
BODY_LIMITS = {
    ("PUT", exec_routes.PATH): EXEC_MAX_BODY_BYTES,
    ("POST", exec_routes.PATH): EXEC_MAX_BODY_BYTES,
}


async def _authenticate(scope: Scope, authorization: str | None) -> None:
    # The body limit's session check for large bodies: the same check as AuthDep.
    await authenticate(scope["app"].state.services, authorization)


def assemble(lifespan: Lifespan) -> FastAPI:
    """vmexec's API app; ``lifespan`` must set ``app.state.services``."""
    app = FastAPI(
        title="vmexec",
        version=vmexec.__version__,
        summary="Run commands inside KVM/QEMU guests through the QEMU guest agent, "
                "with ZStack's REST API.",
        lifespan=lifespan,
    )
    errors.install_error_handlers(app)
    app.add_middleware(BodyLimit, limits=BODY_LIMITS, authenticate=_authenticate)
    for module in (health, sessions, jobs, exec_routes, vms, hosts):
        app.include_router(module.router)
    return app
