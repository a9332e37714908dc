"""FastAPI dependencies, as ``Annotated`` aliases so route signatures stay short.

- ``ServicesDep``: the app's :class:`~vmexec.api.services.Services`.
- ``AuthDep``: whom the request acts as: the session of ``Authorization: OAuth <uuid>``, or
  the account of the access key of ``Authorization: ZStack <AccessKeyID>:<signature>`` (with
  a ``Date`` header; see :mod:`vmexec.services.access_keys`), or, without an
  ``Authorization`` header, the session of the web console's cookie (state-changing calls
  with its CSRF token; see :mod:`vmexec.api.cookies`). Raises
  :class:`~vmexec.api.errors.ApiFailure`: ``400`` when there are no credentials or the header
  is of another scheme, ``403 ID.1002`` for a cookie without its CSRF token, ``503 ID.1001``
  when the session is unknown or expired, or the signature, key or date is refused.
- ``AdminDep``: as ``AuthDep``, for APIs only an admin (a ``SystemAdmin`` account) may call:
  hosts, accounts, SetVmQga, ChangeResourceOwner. Raises ``ApiFailure`` ``503 ID.1002`` for
  any other account.
- ``ViewerDep``: the :class:`~vmexec.services.inventory.Viewer` of ``AuthDep``'s account:
  which VMs it sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyCookie, APIKeyHeader

from vmexec.api.cookies import CSRF_HEADER, SESSION_COOKIE, check_csrf, session_cookie
from vmexec.api.errors import api_error, bad_request
from vmexec.api.services import Services
from vmexec.services.access_keys import SCHEME as ACCESS_KEY_SCHEME
from vmexec.services.auth import AuthSession
from vmexec.services.executions import Caller
from vmexec.services.inventory import Viewer
from vmexec.zstack.errors import Code


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


# auto_error=False: a missing header must answer ZStack's 400, not FastAPI's 403.
_authorization = APIKeyHeader(
    name="Authorization", auto_error=False, scheme_name="OAuth",
    description="`OAuth <session uuid>`, the session from LogInByAccount; or `ZStack "
                "<AccessKeyID>:<signature>` with a `Date` header, signed with an access key "
                "as ZStack's SDKs sign.")

# Documented for the API's readers; the check itself is check_credentials's.
_console_cookie = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, scheme_name="ConsoleCookie",
    description="The web console's session (`POST /console/session`), when there is no "
                f"`Authorization` header; PUT, POST and DELETE also need `{CSRF_HEADER}`.")


#: The scope key under which the body limit (:mod:`vmexec.api.limits`) leaves the session it
#: checked before reading the body, so that the route does not look it up again; ``AuthDep``
#: leaves it there too, for the API log and the audit (:mod:`vmexec.api.observe`).
CHECKED_SESSION = "vmexec.session"


async def authenticate(request: Request, services: ServicesDep,
                       authorization: Annotated[str | None, Security(_authorization)],
                       _cookie: Annotated[str | None, Security(_console_cookie)]
                       ) -> AuthSession:
    """Whom the request acts as, a session renewed on use (see module doc)."""
    checked = request.scope.get(CHECKED_SESSION)
    if isinstance(checked, AuthSession):
        return checked
    session = await check_credentials(services, request.method, request.scope["path"],
                                      request.headers)
    request.scope[CHECKED_SESSION] = session  # the caller, for the log and the audit
    return session


async def check_credentials(services: Services, method: str, path: str,
                            headers: Mapping[str, str]) -> AuthSession:
    """What ``AuthDep`` checks, for callers outside a route (see module doc); ``headers``
    must look names up case-insensitively."""
    authorization = headers.get("authorization")
    if not authorization and (cookie := session_cookie(headers)) is not None:
        check_csrf(method, cookie, headers)  # before the session: it costs no database call
        return await services.auth.authenticate(cookie)
    if not authorization:
        raise bad_request("the header 'Authorization' requires a session UUID: "
                          "'Authorization: OAuth <session uuid>'")
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() == ACCESS_KEY_SCHEME.lower() and credentials.strip():
        return await services.access_keys.authenticate(
            credentials, method=method, path=path, date=headers.get("date"))
    if scheme.lower() != "oauth" or not credentials.strip():
        raise bad_request("the header 'Authorization' must be 'OAuth <session uuid>' (or "
                          "'ZStack <AccessKeyID>:<signature>')")
    return await services.auth.authenticate(credentials.strip())


AuthDep = Annotated[AuthSession, Depends(authenticate)]


def is_admin(session: AuthSession) -> bool:
    """Whether the request's account is an administrator (its type is ``SystemAdmin``)."""
    return session.admin


def caller_of(session: AuthSession) -> Caller:
    """Who a request acts as, for the services that run and record commands."""
    return Caller(session.account_uuid, session.account_name, admin=is_admin(session))


def viewer_of(session: AuthSession) -> Viewer:
    """The VM visibility of the request's account (see :mod:`vmexec.services.inventory`)."""
    return Viewer(account_uuid=session.account_uuid, admin=is_admin(session))


async def require_admin(session: AuthDep) -> AuthSession:
    """The caller's session, if its account is an admin (see module doc)."""
    if not is_admin(session):
        raise api_error(Code.ID_PERMISSION_DENIED,
                        f"account[name:{session.account_name}] is not an admin: only an admin "
                        "may call this API")
    return session


async def _viewer(session: AuthDep) -> Viewer:
    return viewer_of(session)


AdminDep = Annotated[AuthSession, Depends(require_admin)]
ViewerDep = Annotated[Viewer, Depends(_viewer)]
