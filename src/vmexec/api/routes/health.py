"""``GET /health``: is the server up and its database reachable (no auth), and what is unsafe
about it (``defaultPassword``, ``warnings``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

import vmexec
from vmexec.api.deps import ServicesDep
from vmexec.services.auth import DEFAULT_PASSWORD_WARNING

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and database check",
            responses={503: {"description": "the database cannot be reached"}})
async def health(services: ServicesDep) -> JSONResponse:
    version = getattr(vmexec, "__version__", "unknown")
    default_password = services.auth.default_password_in_use
    safety = {"defaultPassword": default_password,
              "warnings": [DEFAULT_PASSWORD_WARNING] if default_password else []}
    try:
        async with services.db() as db:
            await db.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        return JSONResponse({"status": "error", "version": version,
                             "database": f"unreachable: {exc}", **safety}, status_code=503)
    return JSONResponse({"status": "ok", "version": version, "database": "ok", **safety})
