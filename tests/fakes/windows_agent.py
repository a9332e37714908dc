"""A qemu-ga protocol peer that stands in for the agent of a Windows guest.

A Windows guest cannot boot on these machines, so this peer speaks the real agent protocol on a
unix socket (guest-sync-delimited with its 0xFF, guest-exec, guest-exec-status, guest-file-*)
and plays the part of Windows: it checks that vmexec starts ``powershell.exe`` with
``-EncodedCommand`` carrying the Windows supervisor, reads the run's parameters from stdin
exactly as the supervisor does, and "runs" the script through a table given by the test,
answering with the bytes a Windows console would produce (e.g. GBK for a Chinese Windows).
It is a stand-in for the Windows side only; nothing here claims to run in a VM.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmexec.execution.windows import RUN_DIR, SUPERVISOR, decode_powershell


@dataclass
class WindowsRun:
    """What the supervisor was asked to do, as the peer understood it."""

    params: dict[str, Any]
    args: list[str]


@dataclass
class Outcome:
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    timed_out: bool = False


Script = Callable[[WindowsRun], Outcome]


@dataclass
class FakeWindowsAgent:
    socket: Path
    run: Script
    code_page: str = "cp936"
    runs: list[WindowsRun] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    _procs: dict[int, dict[str, Any]] = field(default_factory=dict)
    _handles: dict[int, list[Any]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))
    _server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> FakeWindowsAgent:
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.socket))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while True:
            data = await reader.read(65536)
            if not data:
                break
            buffer += data.replace(b"\xff", b"")
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    writer.write(self._answer(json.loads(line)))
                    await writer.drain()
        writer.close()
        await writer.wait_closed()

    def _answer(self, message: dict[str, Any]) -> bytes:
        command, args = message["execute"], message.get("arguments", {})
        if command == "guest-sync-delimited":
            return b"\xff" + json.dumps({"return": args["id"]}).encode() + b"\n"
        try:
            value = getattr(self, "_" + command.replace("-", "_"))(**{
                k.replace("-", "_"): v for k, v in args.items()})
            reply: dict[str, Any] = {"return": value}
        except KeyError as exc:
            reply = {"error": {"class": "GenericError", "desc": f"not found: {exc}"}}
        return json.dumps(reply).encode() + b"\n"

    def _guest_ping(self) -> dict[str, Any]:
        return {}

    def _guest_info(self) -> dict[str, Any]:
        return {"version": "108.0.2 (fake Windows)", "supported_commands": [
            {"name": "guest-exec", "enabled": True}]}

    def _guest_exec(self, path: str, arg: list[str], capture_output: bool = False,
                    input_data: str = "", env: Any = None) -> dict[str, int]:
        assert path == "powershell.exe", path
        assert arg[:5] == ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
                           "-EncodedCommand"], arg
        script = decode_powershell(arg)
        pid = next(self._ids)
        stdin = base64.b64decode(input_data) if input_data else b""
        if script == SUPERVISOR:
            run = WindowsRun(json.loads(stdin), arg)
            self.runs.append(run)
            self._procs[pid] = self._supervise(run)
        else:  # kill / cleanup helpers: nothing to show
            self._procs[pid] = {"exited": True, "exitcode": 0}
        return {"pid": pid}

    def _supervise(self, run: WindowsRun) -> dict[str, Any]:
        params = run.params
        outcome = self.run(run)
        state = "timeout" if outcome.timed_out else "exited"
        base = f"{RUN_DIR}\\{params['id']}"
        status = f"{outcome.exit_code} {state} {RUN_DIR} {self.code_page}"
        self.files.update({f"{base}.rc": status.encode(), f"{base}.out": outcome.stdout,
                           f"{base}.err": outcome.stderr, f"{base}.pid": b"4242"})
        return {"exited": True, "exitcode": 0,
                "out-data": base64.b64encode(b"VMEXEC1 " + status.encode() + b"\n").decode()}

    def _guest_exec_status(self, pid: int) -> dict[str, Any]:
        return self._procs.pop(pid)

    def _guest_file_open(self, path: str, mode: str = "r") -> int:
        data = self.files[path]
        handle = next(self._ids)
        self._handles[handle] = [data, 0]
        return handle

    def _guest_file_seek(self, handle: int, offset: int, whence: int) -> dict[str, Any]:
        entry = self._handles[handle]
        entry[1] = {0: offset, 1: entry[1] + offset, 2: len(entry[0]) + offset}[whence]
        return {"position": entry[1], "eof": entry[1] >= len(entry[0])}

    def _guest_file_read(self, handle: int, count: int) -> dict[str, Any]:
        data, pos = self._handles[handle]
        chunk = data[pos:pos + count]
        self._handles[handle][1] = pos + len(chunk)
        return {"count": len(chunk), "buf-b64": base64.b64encode(chunk).decode(),
                "eof": pos + len(chunk) >= len(data)}

    def _guest_file_close(self, handle: int) -> dict[str, Any]:
        del self._handles[handle]
        return {}
