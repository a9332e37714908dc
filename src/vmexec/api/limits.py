"""Request bodies: the session checked before a byte is read, the size limited per route
(pure ASGI middleware).

For a request with a body:

- to a route that needs a session, the ``Authorization`` session is checked first: a request
  without a valid one is refused before its body is read, whatever its size (the session is
  then handed to the route, which does not look it up again);
- a ``Content-Length`` above the route's limit is answered ``413`` at once, nothing read;
- a body sent without a length (chunked) is counted as it arrives and answered ``413`` as soon
  as it passes the limit, so at most the limit is ever held in memory;
- a route that streams its body (a file upload: ``streamed``) gets it as it arrives, once the
  session and the ``Content-Length`` are checked: it counts the bytes itself.

The ``413`` is ZStack's error body (``SYS.1007``) saying which limit applies; the connection is
closed after any early answer, since the rest of the body was not read.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vmexec.api.errors import ApiFailure, api_error, bad_request, to_failure
from vmexec.zstack.errors import Code

#: The limit of a route without one of its own: every other API's valid request fits in it.
DEFAULT_BODY_LIMIT = 64 * 1024

#: Checks the ``Authorization`` header of a request; returns the session (put in the scope
#: under ``session_key``) or raises what ``AuthDep`` raises.
Authenticate = Callable[[Scope, str | None], Awaitable[Any]]
#: Whether the route a request goes to needs a session.
NeedsSession = Callable[[Scope], bool]


class BodyLimit:
    """The middleware; ``limits`` maps ``(method, path)`` to bytes, others get ``default``."""

    def __init__(self, app: ASGIApp, *, limits: Mapping[tuple[str, str], int],
                 authenticate: Authenticate, needs_session: NeedsSession, session_key: str,
                 default: int = DEFAULT_BODY_LIMIT,
                 streamed: Mapping[tuple[str, str], int] | None = None) -> None:
        self.app = app
        self._limits = limits
        #: (method, path pattern) -> limit of the routes that read their body as it comes.
        self._streamed = [(method, re.compile(pattern), limit)
                          for (method, pattern), limit in (streamed or {}).items()]
        self._authenticate = authenticate
        self._needs_session = needs_session
        self._session_key = session_key
        self._default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if (declared is None and "transfer-encoding" not in headers) or declared == "0":
            await self.app(scope, receive, send)  # no body
            return
        refusal = await self._refusal(scope, headers, declared)
        if refusal is not None:
            await _answer(refusal, scope, receive, send)
            return
        if self._streams(scope) is not None:
            await self.app(scope, receive, send)
            return

        limit = self._limit(scope)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client went away: the app sees the disconnect as it would have.
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _answer(_too_large(scope, limit), scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    def _streams(self, scope: Scope) -> int | None:
        """The limit of a route that streams its body (None: the body is read here)."""
        for method, pattern, limit in self._streamed:
            if scope["method"] == method and pattern.match(scope["path"]):
                return limit
        return None

    def _limit(self, scope: Scope) -> int:
        streamed = self._streams(scope)
        if streamed is not None:
            return streamed
        return self._limits.get((scope["method"], scope["path"]), self._default)

    async def _refusal(self, scope: Scope, headers: Headers,
                       declared: str | None) -> ApiFailure | None:
        """Why the request is answered before its body is read, if it is."""
        if declared is not None:
            if not declared.strip().isdigit():
                return bad_request(f"the header Content-Length is not a number: {declared!r}")
            if int(declared) > self._limit(scope):
                return _too_large(scope, self._limit(scope))
        if self._needs_session(scope):
            try:
                scope[self._session_key] = await self._authenticate(
                    scope, headers.get("authorization"))
            except Exception as exc:  # the session check's own errors, mapped as anywhere
                return to_failure(exc)
        return None


def _too_large(scope: Scope, limit: int) -> ApiFailure:
    return api_error(Code.SYS_INVALID_ARGUMENT,
                     f"the request body is larger than {limit} bytes, the limit of "
                     f"{scope['method']} {scope['path']}", status=413)


async def _answer(failure: ApiFailure, scope: Scope, receive: Receive, send: Send) -> None:
    response = failure.response()
    # The unread rest of the body makes the connection unusable for another request.
    response.headers["Connection"] = "close"
    await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that gives ``messages`` first, then the real one (for disconnects)."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()
    return replay
