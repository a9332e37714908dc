"""Turning a stored :class:`~vmexec.services.jobs.JobReply` into the HTTP reply (the same for a
direct answer and for a poll of ``/api-jobs``).

A reply whose text is left out of its body (a command's output: ``JobReply.output``) is
written in pieces from the engine's bytes once that text is large (:data:`STREAM_FROM`): the
same bytes and ``Content-Length`` as ``JSONResponse`` gives, without the reply's text, JSON and
bytes in memory at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from vmexec.services.jobs import JobReply, LazyText
from vmexec.zstack.classes import EXEC_REPLY_TYPED_FIELDS, wants_schema, with_schema

#: Bytes of left-out text from which a reply is written in pieces.
STREAM_FROM = 256 * 1024
#: Bytes sent at a time (at least) when it is.
SEND_BYTES = 64 * 1024


def job_response(reply: JobReply, request: Request,
                 headers: Mapping[str, str] | None = None) -> Response:
    body = reply.body
    if reply.success and wants_schema(request.headers):
        body = with_schema(body, EXEC_REPLY_TYPED_FIELDS)
    if reply.output is not None and reply.output.size >= STREAM_FROM:
        return PiecewiseJSONResponse(body, reply.output, status_code=reply.status,
                                     headers=headers)
    if reply.output is not None:
        body = reply.output.fill(body)
    return JSONResponse(body, status_code=reply.status, headers=dict(headers or {}))


class PiecewiseJSONResponse(Response):
    """``JSONResponse(text.fill(body))``'s bytes, written as ``text`` makes them."""

    media_type = "application/json"

    def __init__(self, body: dict[str, Any], text: LazyText, *, status_code: int,
                 headers: Mapping[str, str] | None = None) -> None:
        self._body = body
        self._text = text
        super().__init__(content=None, status_code=status_code, headers=headers)
        # Counted piece by piece too: the reply keeps its Content-Length.
        self.headers["content-length"] = str(text.json_size(body))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        if scope["method"] != "HEAD":
            pending: list[bytes] = []
            size = 0
            for chunk in self._text.json_chunks(self._body):
                # The small pieces between the text's go out together.
                pending.append(chunk)
                size += len(chunk)
                if size >= SEND_BYTES:
                    await send({"type": "http.response.body", "body": b"".join(pending),
                                "more_body": True})
                    pending, size = [], 0
            if pending:
                await send({"type": "http.response.body", "body": b"".join(pending),
                            "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
