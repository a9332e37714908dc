"""Typed guest-agent commands over any :class:`AgentTransport` — one method per command."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vmexec.agent.errors import AgentCommandDisabled, AgentProtocolError
from vmexec.agent.protocol import request_size
from vmexec.agent.transport.base import DEFAULT_TIMEOUT, AgentTransport

#: The agent refuses to read more than this in one guest-file-read (48 MiB in qemu-ga).
MAX_FILE_READ = 48 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class AgentInfo:
    version: str
    #: command name -> enabled
    commands: Mapping[str, bool] = field(default_factory=dict)

    def enabled(self, command: str) -> bool:
        return self.commands.get(command, False)


@dataclass(frozen=True, slots=True)
class ExecStatus:
    exited: bool
    exit_code: int | None = None
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@dataclass(frozen=True, slots=True)
class FileChunk:
    data: bytes
    eof: bool


def _b64decode(value: Any, command: str) -> bytes:
    if value is None:
        return b""
    try:
        # What base64.b64decode(validate=True) does, without its copy of the text as bytes
        # first (a read's reply is up to 2.7 MiB of it).
        return binascii.a2b_base64(value, strict_mode=True)
    except (ValueError, TypeError) as exc:
        raise AgentProtocolError(f"invalid base64 in reply: {exc}", command=command) from exc


def _expect(reply: Any, kind: type, command: str) -> Any:
    if not isinstance(reply, kind):
        raise AgentProtocolError(
            f"unexpected reply {reply!r}, wanted {kind.__name__}", command=command
        )
    return reply


class GuestAgent:
    """The commands of the QEMU guest agent that vmexec uses, typed.

    Every method raises the :mod:`vmexec.agent.errors` exceptions of the transport.
    """

    def __init__(self, transport: AgentTransport) -> None:
        self.transport = transport

    @property
    def name(self) -> str:
        return self.transport.name

    async def ping(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        await self.transport.execute("guest-ping", timeout=timeout)

    async def info(self, *, timeout: float = DEFAULT_TIMEOUT) -> AgentInfo:
        reply = _expect(await self.transport.execute("guest-info", timeout=timeout), dict,
                        "guest-info")
        commands = {
            str(c.get("name")): bool(c.get("enabled", True))
            for c in reply.get("supported_commands", [])
            if isinstance(c, dict)
        }
        return AgentInfo(version=str(reply.get("version", "")), commands=commands)

    async def exec(
        self, path: str, args: Sequence[str] = (), *, env: Sequence[str] | None = None,
        input_data: bytes | None = None, capture_output: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> int:
        """Start ``path args...`` in the guest and return its pid.

        Raises:
            AgentCommandDisabled: guest-exec is disabled in the agent.
        """
        arguments = _exec_arguments(path, args, env, input_data, capture_output)
        reply = _expect(await self.transport.execute("guest-exec", arguments, timeout=timeout),
                        dict, "guest-exec")
        pid = reply.get("pid")
        if not isinstance(pid, int):
            raise AgentProtocolError(f"guest-exec reply without pid: {reply!r}",
                                     command="guest-exec")
        return pid

    async def exec_status(self, pid: int, *, timeout: float = DEFAULT_TIMEOUT) -> ExecStatus:
        """Poll a process started by :meth:`exec`.

        The first reply with ``exited`` frees the agent's record: a later call for the same pid
        raises AgentCommandError.
        """
        reply = _expect(
            await self.transport.execute("guest-exec-status", {"pid": pid}, timeout=timeout),
            dict, "guest-exec-status",
        )
        return ExecStatus(
            exited=bool(reply.get("exited")),
            exit_code=reply.get("exitcode"),
            signal=reply.get("signal"),
            stdout=_b64decode(reply.get("out-data"), "guest-exec-status"),
            stderr=_b64decode(reply.get("err-data"), "guest-exec-status"),
            stdout_truncated=bool(reply.get("out-truncated")),
            stderr_truncated=bool(reply.get("err-truncated")),
        )

    async def file_open(self, path: str, mode: str = "r", *,
                        timeout: float = DEFAULT_TIMEOUT) -> int:
        reply = await self.transport.execute("guest-file-open", {"path": path, "mode": mode},
                                             timeout=timeout)
        return int(_expect(reply, int, "guest-file-open"))

    async def file_read(self, handle: int, count: int = 4 * 1024 * 1024, *,
                        timeout: float = DEFAULT_TIMEOUT) -> FileChunk:
        reply = _expect(
            await self.transport.execute(
                "guest-file-read", {"handle": handle, "count": min(count, MAX_FILE_READ)},
                timeout=timeout),
            dict, "guest-file-read",
        )
        return FileChunk(data=_b64decode(reply.get("buf-b64"), "guest-file-read"),
                         eof=bool(reply.get("eof")))

    async def file_seek(self, handle: int, offset: int, whence: int = 0, *,
                        timeout: float = DEFAULT_TIMEOUT) -> int:
        """Move the file position; returns the new position (whence: 0 set, 1 cur, 2 end)."""
        reply = _expect(
            await self.transport.execute(
                "guest-file-seek", {"handle": handle, "offset": offset, "whence": whence},
                timeout=timeout),
            dict, "guest-file-seek",
        )
        return int(reply.get("position", 0))

    async def file_write(self, handle: int, data: bytes, *,
                         timeout: float = DEFAULT_TIMEOUT) -> int:
        """Write ``data`` at the file position; returns the bytes written. Keep ``data``
        small (see :data:`vmexec.agent.protocol.SAFE_REQUEST_BYTES`)."""
        reply = _expect(
            await self.transport.execute(
                "guest-file-write",
                {"handle": handle, "buf-b64": base64.b64encode(data).decode("ascii")},
                timeout=timeout),
            dict, "guest-file-write")
        return int(reply.get("count", 0))

    async def file_close(self, handle: int, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        await self.transport.execute("guest-file-close", {"handle": handle}, timeout=timeout)

    async def aclose(self) -> None:
        await self.transport.aclose()


__all__ = ["AgentCommandDisabled", "AgentInfo", "ExecStatus", "FileChunk", "GuestAgent"]


def exec_request_size(path: str, args: Sequence[str] = (), *,
                      input_data: bytes | None = None, capture_output: bool = True) -> int:
    """Bytes of the ``guest-exec`` request :meth:`GuestAgent.exec` would send."""
    return request_size("guest-exec", _exec_arguments(path, args, None, input_data,
                                                      capture_output))


def _exec_arguments(path: str, args: Sequence[str], env: Sequence[str] | None,
                    input_data: bytes | None, capture_output: bool) -> dict[str, Any]:
    arguments: dict[str, Any] = {"path": path, "arg": list(args),
                                 "capture-output": capture_output}
    if env is not None:
        arguments["env"] = list(env)
    if input_data:
        arguments["input-data"] = base64.b64encode(input_data).decode("ascii")
    return arguments
