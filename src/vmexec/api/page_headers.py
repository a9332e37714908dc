"""Security headers of the pages a browser shows: the console (``/``, ``/console/...``) and the
API docs (``/docs``, ``/redoc``) (pure ASGI middleware).

Every such answer gets ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``
and a ``Content-Security-Policy``: the console's is ``default-src 'self'`` (no inline script
or style, nothing from another host). Swagger UI and Redoc are third-party bundles that draw
icons from ``data:`` URLs, and Redoc injects its styles and starts its search worker from a
``blob:``; their pages allow just that, and still load scripts only from vmexec itself.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_POLICY = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
DOCS_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
               "worker-src 'self' blob:; frame-ancestors 'none'")


def policy_of(path: str) -> str | None:
    """The CSP of the page or file at ``path``; None for the API."""
    if path == "/" or path.startswith("/console/"):
        return CONSOLE_POLICY
    if path in ("/docs", "/redoc") or path.startswith("/docs/"):
        return DOCS_POLICY
    return None


class PageHeaders:
    """The middleware (see the module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = policy_of(scope["path"]) if scope["type"] == "http" else None
        if policy is None:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = policy
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, send_with_headers)
