"""Following a Server-Sent Event stream to its last event, across dropped connections.

vmexec's streams end with a final event (an execution's ``result``, a run's ``runFinished``).
A connection that breaks before it (a proxy's idle cut, a server restart) is opened again with
``Last-Event-ID``, so the server resumes right after the last event received: no event is lost
or repeated. Reconnects are bounded (:data:`RECONNECTS` in a row without an event between them).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TypeVar

import httpx
from httpx_sse import aconnect_sse

from vmexec.client.errors import ApiError, ConnectionFailed

T = TypeVar("T")

#: Reconnects in a row (no event received between them) before giving up.
RECONNECTS = 8
#: Seconds before the first reconnect; doubled each time, up to RECONNECT_DELAY_MAX.
RECONNECT_DELAY = 0.2
RECONNECT_DELAY_MAX = 5.0
#: Seconds without a byte before the connection counts as dropped: the server sends a
#: keep-alive comment every 15 s.
READ_TIMEOUT = 45.0


def reconnect_delay(attempt: int) -> float:
    """Seconds to wait before reconnect number ``attempt`` (1-based)."""
    return float(min(RECONNECT_DELAY * 2 ** (attempt - 1), RECONNECT_DELAY_MAX))


async def follow_events(http: httpx.AsyncClient, path: str, *, headers: Mapping[str, str],
                        decode: Callable[[str, str, str], T | None],
                        is_last: Callable[[T], bool], last_event_id: str | None = None,
                        connect_timeout: float = 30.0, reconnects: int = RECONNECTS,
                        on_connect: Callable[[], None] | None = None) -> AsyncIterator[T]:
    """The decoded events of the stream at ``path`` up to and including the last one
    (``is_last``); ``decode(event, data, id)`` gives None for events to skip. At most
    ``reconnects`` reconnects in a row without an event; ``on_connect`` is called as each
    connection's stream begins.

    Raises ApiError (the server refused the stream: its ZStack error), ConnectionFailed (no
    connection after RECONNECTS tries), and what ``decode`` raises.
    """
    attempt = 0
    timeout = httpx.Timeout(connect_timeout, read=READ_TIMEOUT)
    while True:
        request_headers = dict(headers)
        if last_event_id is not None:
            request_headers["Last-Event-ID"] = last_event_id
        try:
            async with aconnect_sse(http, "GET", path, headers=request_headers,
                                    timeout=timeout) as source:
                response = source.response
                content_type = response.headers.get("content-type", "")
                if not response.is_success or "text/event-stream" not in content_type:
                    await response.aread()
                    raise _refusal(response)
                if on_connect is not None:
                    on_connect()
                async for sse in source.aiter_sse():
                    attempt = 0
                    if sse.id:
                        last_event_id = sse.id
                    item = decode(sse.event, sse.data, sse.id)
                    if item is None:
                        continue
                    yield item
                    if is_last(item):
                        return
            reason = "the stream ended before its last event"
        except httpx.TransportError as exc:  # refused, reset, cut mid-body, read timeout
            reason = str(exc) or type(exc).__name__
        attempt += 1
        if attempt > reconnects:
            raise ConnectionFailed(str(http.base_url.join(path)),
                                   f"{reason} (gave up after {reconnects} reconnects)")
        await asyncio.sleep(reconnect_delay(attempt))


def _refusal(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:  # a 2xx that is not a stream: a proxy's page, or an old server
        return ApiError(response.status_code, f"HTTP.{response.status_code}",
                        "the reply is not an event stream", response.text[:500])
    return ApiError.from_reply(response.status_code, body, response.text)
