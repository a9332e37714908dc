"""The session cookie of the web console, and its CSRF token.

A browser that logged in to the console (``POST /console/session``) holds the session token
in an ``httpOnly``, ``SameSite=Strict`` cookie (:data:`SESSION_COOKIE`): it is the same
session as LogInByAccount's, checked and renewed the same way. A cookie is sent by the browser
whatever page asks, so a call authenticated by it that may change state (any method but GET,
HEAD, OPTIONS) must also carry ``X-CSRF-Token`` (:data:`CSRF_HEADER`) with the session's
token: a page of another origin can neither read it nor set that header without a CORS
preflight, which vmexec never grants.

The CSRF token is derived from the session token (:func:`csrf_token`), so it cannot be
planted by whoever can write cookies for the domain (the weakness of a plain double-submit
cookie): the page reads it from the readable :data:`CSRF_COOKIE`, or from the login reply.
Requests authenticated by an ``Authorization`` header are not concerned: a browser never
adds that header by itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from starlette.requests import cookie_parser

from vmexec.api.errors import ApiFailure, api_error
from vmexec.zstack.errors import Code

SESSION_COOKIE = "vmexec_session"
CSRF_COOKIE = "vmexec_csrf"
CSRF_HEADER = "X-CSRF-Token"
#: Methods that change nothing: no CSRF token needed.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CSRF_CONTEXT = b"vmexec console csrf:"


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: a hash of the token (not the stored hash, which is
    ``sha256(token)``), so it tells nothing about the token itself."""
    return hashlib.sha256(_CSRF_CONTEXT + session_token.strip().lower().encode()).hexdigest()


def session_cookie(headers: Mapping[str, str]) -> str | None:
    """The session token of the request's ``Cookie`` header, if any; ``headers`` must look
    names up case-insensitively."""
    cookie = headers.get("cookie")
    if not cookie:
        return None
    token = cookie_parser(cookie).get(SESSION_COOKIE, "").strip()
    return token or None


def check_csrf(method: str, session_token: str, headers: Mapping[str, str]) -> None:
    """Refuse a cookie-authenticated call that may change state without the session's CSRF
    token. Raises :class:`ApiFailure` ``403 ID.1002``."""
    if method.upper() in SAFE_METHODS:
        return
    given = headers.get(CSRF_HEADER.lower(), "").strip()
    if not given:
        raise csrf_refusal(f"the header {CSRF_HEADER} is missing: a {method.upper()} "
                           "authenticated by the console's session cookie must carry it")
    if not hmac.compare_digest(given.encode(), csrf_token(session_token).encode()):
        raise csrf_refusal(f"the header {CSRF_HEADER} is not the token of the session of "
                           "the console's cookie")


def csrf_refusal(details: str) -> ApiFailure:
    return api_error(Code.ID_PERMISSION_DENIED, details, status=403)
