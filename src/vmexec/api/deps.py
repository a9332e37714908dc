"""FastAPI dependencies, as ``Annotated`` aliases so route signatures stay short.

- ``ServicesDep``: the app's :class:`~vmexec.api.services.Services`.
- ``AuthDep``: the caller's session from ``Authorization: OAuth <uuid>``. Raises
  :class:`~vmexec.api.errors.ApiFailure`: ``400`` when the header is missing or not ``OAuth``,
  ``503 ID.1001`` when the session is unknown or expired.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from vmexec.api.errors import bad_request
from vmexec.api.services import Services
from vmexec.services.auth import AuthSession


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


# auto_error=False: a missing header must answer ZStack's 400, not FastAPI's 403.
_authorization = APIKeyHeader(
    name="Authorization", auto_error=False, scheme_name="OAuth",
    description="`OAuth <session uuid>`, the session from LogInByAccount.")


async def authenticate(services: ServicesDep,
                       authorization: Annotated[str | None, Security(_authorization)]
                       ) -> AuthSession:
    """The session named by the ``Authorization`` header, renewed on use (see module doc)."""
    if not authorization:
        raise bad_request("the header 'Authorization' requires a session UUID: "
                          "'Authorization: OAuth <session uuid>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "oauth" or not token.strip():
        raise bad_request("the header 'Authorization' must be 'OAuth <session uuid>'")
    return await services.auth.authenticate(token.strip())


AuthDep = Annotated[AuthSession, Depends(authenticate)]
