"""FastAPI dependencies, as ``Annotated`` aliases so route signatures stay short.

- ``ServicesDep``: the app's :class:`~vmexec.api.services.Services`.
- ``AuthDep``: the caller's session from ``Authorization: OAuth <uuid>``. Raises
  :class:`~vmexec.api.errors.ApiFailure`: ``400`` when the header is missing or not ``OAuth``,
  ``503 ID.1001`` when the session is unknown or expired.
- ``AdminDep``: as ``AuthDep``, for APIs only an admin may call (adding and deleting hosts:
  a host URI decides what the server connects to). Raises ``ApiFailure`` ``503 ID.1002`` for
  any other account.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from vmexec.api.errors import api_error, bad_request
from vmexec.api.services import Services
from vmexec.services.auth import ADMIN_ACCOUNT, AuthSession
from vmexec.zstack.errors import Code


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


# auto_error=False: a missing header must answer ZStack's 400, not FastAPI's 403.
_authorization = APIKeyHeader(
    name="Authorization", auto_error=False, scheme_name="OAuth",
    description="`OAuth <session uuid>`, the session from LogInByAccount.")


#: The scope key under which the body limit (:mod:`vmexec.api.limits`) leaves the session it
#: checked before reading the body, so that the route does not look it up again; ``AuthDep``
#: leaves it there too, for the API log and the audit (:mod:`vmexec.api.observe`).
CHECKED_SESSION = "vmexec.session"


async def authenticate(request: Request, services: ServicesDep,
                       authorization: Annotated[str | None, Security(_authorization)]
                       ) -> AuthSession:
    """The session named by the ``Authorization`` header, renewed on use (see module doc)."""
    checked = request.scope.get(CHECKED_SESSION)
    if isinstance(checked, AuthSession):
        return checked
    session = await check_session(services, authorization)
    request.scope[CHECKED_SESSION] = session  # the caller, for the log and the audit
    return session


async def check_session(services: Services, authorization: str | None) -> AuthSession:
    """What ``AuthDep`` checks, for callers outside a route (see module doc)."""
    if not authorization:
        raise bad_request("the header 'Authorization' requires a session UUID: "
                          "'Authorization: OAuth <session uuid>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "oauth" or not token.strip():
        raise bad_request("the header 'Authorization' must be 'OAuth <session uuid>'")
    return await services.auth.authenticate(token.strip())


AuthDep = Annotated[AuthSession, Depends(authenticate)]


def is_admin(session: AuthSession) -> bool:
    """Whether the session's account is an administrator.

    Today the one admin is the account named ``admin``; when accounts get a type, this
    predicate alone changes.
    """
    return session.account_name == ADMIN_ACCOUNT


async def require_admin(session: AuthDep) -> AuthSession:
    """The caller's session, if its account is an admin (see module doc)."""
    if not is_admin(session):
        raise api_error(Code.ID_PERMISSION_DENIED,
                        f"account[name:{session.account_name}] is not an admin: only an admin "
                        "may add or delete hosts, or read the audit trail")
    return session


AdminDep = Annotated[AuthSession, Depends(require_admin)]
