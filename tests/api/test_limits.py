"""Request bodies are limited per route before they are read (C14): a 200 MB body is refused
while it is still being sent, without the server holding it, and a body larger than the
default limit is read only for a valid session. Every case runs against a real server on
loopback, fed through a raw socket so the test sees when the server answers mid-upload."""

from __future__ import annotations

import contextlib
import json
import re
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fixtures.server import RunningServer

from api.conftest import VM_1
from api.openapi_document import openapi_document
from vmexec.api.app import SESSIONLESS_BODIES
from vmexec.api.limits import DEFAULT_BODY_LIMIT
from vmexec.api.schemas.exec import MAX_BODY_BYTES as EXEC_LIMIT
from vmexec.execution.models import MAX_COMMAND_CHARS, MAX_STDIN_BYTES

EXEC = "/zstack/v1/vm-instances/commands/exec"
LOGIN = "/zstack/v1/accounts/login"
ADD_HOST = "/zstack/v1/hosts/kvm"
HUGE = 200 * 1024 * 1024
CHUNK = b"x" * (64 * 1024)
MiB = 1024 * 1024


@dataclass
class Answer:
    status: int
    body: dict[str, object]
    #: Body bytes the client had sent when the answer came.
    sent: int


def _send(server: RunningServer, method: str, path: str, *, size: int, chunked: bool,
          headers: dict[str, str] | None = None, body: bytes | None = None) -> Answer:
    """Send ``size`` bytes of body (``body``, else generated), reading the answer as soon as
    the server gives one; stops sending then. Never holds the body in memory."""
    address = urlsplit(server.url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {address.netloc}",
             "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    with socket.create_connection((address.hostname, address.port), timeout=60) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        sent = 0
        while sent < size:
            readable, _, _ = select.select([sock], [sock], [], 60)
            if readable:
                break  # the server answered before the body was complete
            piece = body[sent:sent + len(CHUNK)] if body is not None else CHUNK[:size - sent]
            frame = (f"{len(piece):x}\r\n".encode() + piece + b"\r\n") if chunked else piece
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        else:
            if chunked:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(b"0\r\n\r\n")  # the server may have answered already
        return Answer(*_read_response(sock), sent=sent)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    assert match, head
    while len(rest) < int(match[1]):
        rest += _recv(sock)
    return status, json.loads(rest[:int(match[1])])


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    assert chunk, "the server closed the connection without an answer"
    return chunk


@contextlib.contextmanager
def peak_growth_kib() -> Iterator[list[int]]:
    """Yields a list that receives how much this process's peak RSS grew meanwhile (KiB):
    the server runs in this process."""
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the RSS now
    before = _status_kib("VmHWM")
    growth: list[int] = []
    yield growth
    growth.append(_status_kib("VmHWM") - before)


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert match, field
    return int(match[1])


def _error(answer: Answer, status: int, code: str, fragment: str) -> None:
    assert answer.status == status, answer
    error = answer.body["error"]
    assert isinstance(error, dict)
    assert error["code"] == code, error
    assert fragment in str(error["details"]), error


def test_a_huge_body_without_a_session_is_refused_unread(server: RunningServer) -> None:
    # The finding: 200 MB without a session grew the server from 166 to 725 MiB before a 400.
    with peak_growth_kib() as growth:
        for method, path in (("PUT", EXEC), ("PUT", LOGIN), ("POST", ADD_HOST)):
            answer = _send(server, method, path, size=HUGE, chunked=False)
            _error(answer, 413, "SYS.1007", f"larger than {_limit(path)} bytes, the limit of "
                                            f"{method} {path}")
            assert answer.sent < HUGE
        # Without a length: an API that needs a session refuses before reading a byte...
        for method, path in (("PUT", EXEC), ("POST", ADD_HOST)):
            answer = _send(server, method, path, size=HUGE, chunked=True)
            _error(answer, 400, "SYS.1007", "Authorization")
            assert answer.sent < HUGE
            answer = _send(server, method, path, size=HUGE, chunked=True,
                           headers={"Authorization": "OAuth " + "0" * 32})
            _error(answer, 503, "ID.1001", "invalid or expired")
            assert answer.sent < HUGE
        # ... and one that needs none (login) stops at its limit.
        answer = _send(server, "PUT", LOGIN, size=HUGE, chunked=True)
        _error(answer, 413, "SYS.1007", f"larger than {DEFAULT_BODY_LIMIT} bytes")
        assert answer.sent < HUGE
    assert growth[0] < 8 * 1024, f"peak RSS grew by {growth[0]} KiB"


def test_a_huge_body_with_a_session_stops_at_the_route_limit(server: RunningServer) -> None:
    with peak_growth_kib() as growth:
        answer = _send(server, "PUT", EXEC, size=HUGE, chunked=True, headers=server.auth)
        _error(answer, 413, "SYS.1007", f"larger than {EXEC_LIMIT} bytes")
        assert EXEC_LIMIT < answer.sent < HUGE
        for chunked in (False, True):
            answer = _send(server, "POST", ADD_HOST, size=DEFAULT_BODY_LIMIT + 1,
                           chunked=chunked, headers=server.auth)
            _error(answer, 413, "SYS.1007", f"larger than {DEFAULT_BODY_LIMIT} bytes")
    # What the server may hold is the route's limit (14.8 MiB), not the body.
    assert growth[0] < 32 * 1024, f"peak RSS grew by {growth[0]} KiB"


def test_the_largest_valid_exec_request_fits(server: RunningServer) -> None:
    # 1 MiB of stdin made of control characters, each escaped to 6 bytes of JSON, and the
    # longest command: the worst case the exec limit is computed from.
    stdin = "\x01" * MAX_STDIN_BYTES
    command = "cat\n" + "#" * (MAX_COMMAND_CHARS - 4)
    body = json.dumps({"params": {"vmInstanceUuid": VM_1.uuid, "platform": "Linux",
                                  "command": command, "stdin": stdin}}).encode()
    assert DEFAULT_BODY_LIMIT < 6 * MiB < len(body) <= EXEC_LIMIT
    answer = _send(server, "PUT", EXEC, size=len(body), chunked=True, body=body,
                   headers=server.auth)
    assert answer.status == 200, answer.body
    assert answer.body["stdout"] == stdin


def _limit(path: str) -> int:
    return EXEC_LIMIT if path == EXEC else DEFAULT_BODY_LIMIT


def test_only_the_logins_take_a_body_without_a_session() -> None:
    # The middleware's list of sessionless bodies is the document's: an API with a body and no
    # security requirement must be in it (else its clients would be refused), and nothing else.
    spec = openapi_document()
    sessionless = {(method.upper(), path) for path, operations in spec["paths"].items()
                   for method, operation in operations.items()
                   if "requestBody" in operation and not operation.get("security")}
    assert sessionless == SESSIONLESS_BODIES == {("PUT", LOGIN), ("POST", "/console/session")}


def test_a_small_body_without_a_session_is_not_read_either(server: RunningServer) -> None:
    # Refused before the body is read: a body that is not even JSON gets the session's error.
    answer = _send(server, "POST", ADD_HOST, size=1000, chunked=True)
    _error(answer, 400, "SYS.1007", "Authorization")
    answer = _send(server, "PUT", LOGIN, size=1000, chunked=True)
    _error(answer, 400, "SYS.1007", "JSON")  # the login reads its body: not JSON
