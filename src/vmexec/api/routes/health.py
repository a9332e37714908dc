"""Health, without a session: what is wrong (``/health``), and the two probes a load balancer
or an orchestrator asks (``/health/live``, ``/health/ready``).

- ``/health``: the database (answers a query within :data:`DB_CHECK_TIMEOUT`), every host's
  reachability as the inventory last saw it (no connection is opened for it), and whether
  ``admin`` still has the default password. ``200`` with ``"status": "ok"`` when the database
  answers (unreachable hosts and the default password are listed as problems, not failures:
  the server still serves), else ``503`` with ``"status": "error"``.
- ``/health/live``: ``200`` while the process serves HTTP at all (restart it when not).
- ``/health/ready``: ``200`` once start-up finished and while the database answers, ``503``
  otherwise (send it no traffic then).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

import vmexec
from vmexec.api.deps import ServicesDep
from vmexec.api.services import Services
from vmexec.services.auth import DEFAULT_PASSWORD_WARNING
from vmexec.zstack.inventories import HostStatus

router = APIRouter(tags=["health"])

#: Seconds the database gets to answer ``SELECT 1``.
DB_CHECK_TIMEOUT = 3.0


async def database_problem(services: Services) -> str | None:
    """Why the database is not usable now, or None when it answers."""
    try:
        async with asyncio.timeout(DB_CHECK_TIMEOUT):
            async with services.db() as db:
                await db.execute(text("SELECT 1"))
    except TimeoutError:
        return f"unreachable: no answer within {DB_CHECK_TIMEOUT:g}s"
    except Exception as exc:  # whatever the driver raises: the probe reports, never fails
        return f"unreachable: {type(exc).__name__}: {exc}"
    return None


@router.get("/health", operation_id="GetHealth",
            summary="What is wrong: database, hosts, default password",
            responses={503: {"description": "the database cannot be reached"}})
async def health(services: ServicesDep) -> JSONResponse:
    default_password = services.auth.default_password_in_use
    hosts = services.inventory.host_statuses()
    warnings = [DEFAULT_PASSWORD_WARNING] if default_password else []
    warnings += [f"host {h.name} [uuid:{h.uuid}] is {h.status}" for h in hosts
                 if h.status != HostStatus.CONNECTED]
    problem = await database_problem(services)
    body = {
        "status": "error" if problem else "ok", "version": vmexec.__version__,
        "database": problem or "ok",
        "hosts": [{"uuid": h.uuid, "name": h.name, "status": h.status,
                   "reachable": h.status == HostStatus.CONNECTED} for h in hosts],
        "defaultPassword": default_password, "warnings": warnings,
    }
    return JSONResponse(body, status_code=503 if problem else 200)


@router.get("/health/live", operation_id="GetLiveness", summary="Liveness: the process serves HTTP")
async def live() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/health/ready", operation_id="GetReadiness",
            summary="Readiness: started, and the database answers",
            responses={503: {"description": "starting, stopping, or the database does not "
                                            "answer"}})
async def ready(request: Request) -> JSONResponse:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None or not getattr(request.app.state, "ready", False):
        return JSONResponse({"status": "starting or stopping"}, status_code=503)
    problem = await database_problem(services)
    if problem:
        return JSONResponse({"status": "error", "database": problem}, status_code=503)
    return JSONResponse({"status": "ok"})
