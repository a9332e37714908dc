"""The FastAPI application: routes and ZStack's error handling, nothing else.

The services it serves are built by the composition root (:mod:`vmexec.server`) and put on
``app.state.services`` by the lifespan it passes in.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

import vmexec
from vmexec.api import errors, log_redaction
from vmexec.api.routes import accounts, health, hosts, jobs, sessions, vms
from vmexec.api.routes import exec as exec_routes

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


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
    log_redaction.install()
    # accounts after sessions: PUT /accounts/{uuid} must not shadow PUT /accounts/login.
    for module in (health, sessions, accounts, jobs, exec_routes, vms, hosts):
        app.include_router(module.router)
    return app
