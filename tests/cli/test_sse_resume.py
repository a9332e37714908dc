"""Following an event stream across dropped connections (``vmexec.client.sse``), against a real
HTTP server on loopback that cuts its connections where the test says: each reconnect sends
``Last-Event-ID`` and the events come out once each, in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from vmexec.client import ApiError, ConnectionFailed, OutputEvent, Result
from vmexec.client.events import ExecutionEvent, decode_execution_event
from vmexec.client.sse import follow_events

Handler = Callable[[dict[str, str], asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def http_server(handler: Handler) -> AsyncIterator[str]:
    """A minimal HTTP/1.1 server on a free loopback port: ``handler(headers, writer)``
    answers each request (one per connection)."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n")[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        try:
            await handler(headers, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}"


def sse(event: str, data: object, event_id: int) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\nid: {event_id}\n\n".encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


STREAM_HEAD = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
               b"transfer-encoding: chunked\r\n\r\n")


async def collect(url: str, **options: object) -> list[ExecutionEvent]:
    async with httpx.AsyncClient(base_url=url) as http:
        return [event async for event in follow_events(
            http, "/stream", headers={}, decode=decode_execution_event,
            is_last=lambda e: isinstance(e, Result), **options)]  # type: ignore[arg-type]


async def test_a_dropped_stream_resumes_after_the_last_event_received() -> None:
    seen: list[str | None] = []

    async def handler(headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        resume = headers.get("last-event-id")
        seen.append(resume)
        writer.write(STREAM_HEAD)
        if resume is None:
            # An event, a keep-alive comment, then the connection breaks mid-body (no final
            # chunk): the client sees a protocol error, not an end.
            writer.write(chunk(sse("stdout", {"text": "abc"}, 3) + b": ping\n\n"))
            writer.write(b"5\r\nevent")
        elif resume == "3":
            # A clean end of the body before the result: the stream must be resumed too.
            writer.write(chunk(sse("stderr", {"text": "de"}, 5)) + b"0\r\n\r\n")
        else:
            writer.write(chunk(sse("result", {"status": 200, "body": {"exitCode": 0}}, 5))
                         + b"0\r\n\r\n")
        await writer.drain()

    async with http_server(handler) as url:
        events = await collect(url)
    assert events == [OutputEvent("stdout", "abc", 3), OutputEvent("stderr", "de", 5),
                      Result(200, {"exitCode": 0}, 5)]
    assert seen == [None, "3", "5"]


async def test_resuming_from_a_given_event_id_sends_it() -> None:
    seen: list[str | None] = []

    async def handler(headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        seen.append(headers.get("last-event-id"))
        writer.write(STREAM_HEAD + chunk(sse("result", {"status": 200, "body": {}}, 9))
                     + b"0\r\n\r\n")
        await writer.drain()

    async with http_server(handler) as url:
        events = await collect(url, last_event_id="9")
    assert events == [Result(200, {}, 9)] and seen == ["9"]


async def test_reconnects_are_bounded() -> None:
    connections = 0

    async def handler(headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1  # and the connection closes without a reply

    async with http_server(handler) as url:
        with pytest.raises(ConnectionFailed, match="gave up after 2 reconnects"):
            await collect(url, reconnects=2)
    assert connections == 3


async def test_an_error_reply_is_the_servers_error_not_a_reconnect() -> None:
    connections = 0

    async def handler(headers: dict[str, str], writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        body = json.dumps({"error": {"code": "SYS.1003", "description": "not found",
                                     "details": "no execution"}}).encode()
        writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n"
                     + f"content-length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    async with http_server(handler) as url:
        with pytest.raises(ApiError) as caught:
            await collect(url)
    assert (caught.value.status, caught.value.code) == (404, "SYS.1003")
    assert connections == 1
