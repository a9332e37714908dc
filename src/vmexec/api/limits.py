"""Request body limits, enforced before a body is read (pure ASGI middleware).

Every request body is read here, up to the limit of its route, before the app sees it:

- a ``Content-Length`` above the limit is answered ``413`` at once, nothing read;
- a body sent without a length (chunked) is counted as it arrives and answered ``413`` as soon
  as it passes the limit, so at most the limit is ever held in memory;
- a body larger than :data:`DEFAULT_BODY_LIMIT` (only routes with a larger limit accept one) is
  read only once the ``Authorization`` session is valid: nobody without a session makes the
  server hold megabytes.

The ``413`` is ZStack's error body (``SYS.1007``) saying which limit applies; the connection is
closed after it, since the rest of the body was not read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vmexec.api.errors import ApiFailure, api_error, bad_request, to_failure
from vmexec.zstack.errors import Code

#: The limit of a route without one of its own: every other API's valid request fits in it.
DEFAULT_BODY_LIMIT = 64 * 1024

#: Checks the ``Authorization`` header of a request (raises what ``AuthDep`` raises).
Authenticate = Callable[[Scope, str | None], Awaitable[Any]]


class BodyLimit:
    """The middleware; ``limits`` maps ``(method, path)`` to bytes, others get ``default``."""

    def __init__(self, app: ASGIApp, *, limits: Mapping[tuple[str, str], int],
                 authenticate: Authenticate, default: int = DEFAULT_BODY_LIMIT) -> None:
        self.app = app
        self._limits = limits
        self._authenticate = authenticate
        self._default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limits.get((scope["method"], scope["path"]), self._default)
        headers = Headers(scope=scope)
        refusal: ApiFailure | None = None
        checked = False
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                refusal = bad_request(f"the header Content-Length is not a number: {declared!r}")
            elif int(declared) > limit:
                refusal = _too_large(scope, limit)
            elif int(declared) > self._default:
                refusal, checked = await self._check_session(scope, headers), True
        if refusal is not None:
            await _answer(refusal, scope, receive, send)
            return

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
            if size > self._default and not checked:
                refusal, checked = await self._check_session(scope, headers), True
                if refusal is not None:
                    await _answer(refusal, scope, receive, send)
                    return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _check_session(self, scope: Scope, headers: Headers) -> ApiFailure | None:
        try:
            await self._authenticate(scope, headers.get("authorization"))
        except Exception as exc:  # the session check's own errors, mapped as for any route
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
