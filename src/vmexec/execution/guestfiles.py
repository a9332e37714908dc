"""A run's files in the guest (output, status, pid), read through ``guest-file-*``.

They are what makes a result independent of any single agent reply: the output itself, the
status after a lost reply or a restart, and output while a command runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import GuestAgent
from vmexec.execution.models import StreamOutput
from vmexec.execution.platform import GuestPlatform
from vmexec.execution.status import Status, Where, parse_status
from vmexec.execution.utf8 import prefix, whole_characters

# libvirt refuses agent replies over 10 MiB and RPC strings over 4 MiB: 2 MiB of data is
# 2.7 MiB of base64.
READ_CHUNK = 2 * 1024 * 1024
#: A command's output is read in smaller pieces than a file's download: each read costs the
#: server about 4 times its size while it is in flight (libvirt's reply, its text, the JSON
#: string, the bytes) on top of the output kept, and a command's reply waits for all of it
#: (a download streams its pieces on). 1 MiB: 8 reads for 8 MiB.
OUTPUT_READ_CHUNK = 1024 * 1024
# Requests are far more limited than replies (SAFE_REQUEST_BYTES): 48 KiB is 64 KiB of base64.
WRITE_CHUNK = 48 * 1024


class RunFiles:
    __slots__ = ("agent", "platform", "run_dir", "run_id")

    def __init__(self, agent: GuestAgent, platform: GuestPlatform, run_id: str,
                 run_dir: str | None) -> None:
        self.agent = agent
        self.platform = platform
        self.run_id = run_id
        self.run_dir = run_dir

    def path(self, kind: str, run_dir: str | None = None) -> str:
        directory = run_dir or self.run_dir
        assert directory is not None
        return self.platform.file(directory, self.run_id, kind)

    async def _open(self, path: str) -> int | None:
        try:
            return await self.agent.file_open(path, "r")
        except agent_errors.AgentCommandDisabled:
            raise
        except agent_errors.AgentCommandError:
            return None  # no such file (yet)

    async def _close(self, handle: int) -> None:
        with contextlib.suppress(agent_errors.AgentError):
            await self.agent.file_close(handle)

    async def _read(self, handle: int, limit: int) -> list[bytes]:
        """Up to ``limit`` bytes, in the pieces read (not joined: see StreamOutput)."""
        parts: list[bytes] = []
        left = limit
        while left > 0:
            chunk = await self.agent.file_read(handle, min(OUTPUT_READ_CHUNK, left))
            if chunk.data:
                parts.append(chunk.data)
            left -= len(chunk.data)
            if chunk.eof or not chunk.data:
                break
        return parts

    async def _slurp(self, path: str, offset: int, limit: int
                     ) -> tuple[list[bytes], int] | None:
        """Read up to ``limit`` bytes from ``offset``; returns them (in pieces) and the file's
        size (None: no such file)."""
        handle = await self._open(path)
        if handle is None:
            return None
        try:
            if offset:
                await self.agent.file_seek(handle, offset, 0)
            # One byte more than wanted tells whether there is more, without a size query.
            pieces = await self._read(handle, limit + 1)
            got = sum(len(p) for p in pieces)
            size = offset + got
            if got > limit:
                pieces = prefix(pieces, limit)
                size = await self.agent.file_seek(handle, 0, 2)
        finally:
            # At once, never later: qemu-ga keeps a handle (and a deleted file's space) until
            # it is closed, whatever happens to the client that opened it.
            await self._close(handle)
        return pieces, size

    async def write(self, kind: str, data: bytes) -> bool:
        """Create the run's file ``kind`` holding ``data``, in pieces small enough for one agent
        request each; False if the guest took fewer bytes (its disk is full).

        Raises:
            AgentCommandError: the file cannot be created (e.g. no run directory yet).
        """
        handle = await self.agent.file_open(self.path(kind), "w")
        try:
            for offset in range(0, len(data), WRITE_CHUNK):
                piece = data[offset:offset + WRITE_CHUNK]
                if await self.agent.file_write(handle, piece) < len(piece):
                    return False
        finally:
            await self._close(handle)
        return True

    async def exists(self, kind: str) -> bool:
        handle = await self._open(self.path(kind))
        if handle is None:
            return False
        await self._close(handle)
        return True

    async def locate(self) -> str | None:
        """Find the directory that holds this run's files (None: no trace of the run)."""
        candidates = [self.run_dir] if self.run_dir else []
        candidates += [d for d in self.platform.run_dirs if d not in candidates]
        # An empty pid file is no proof: a directory that turned out full (or read-only)
        # keeps the empty file its refused run opened, and the run went on in the next one.
        # It counts only when no directory has more (the pid may be written in a moment).
        empty_pid: str | None = None
        for run_dir in candidates:
            self.run_dir = run_dir
            if await self.exists("rc") or await self.pid() is not None:
                return run_dir
            if empty_pid is None and await self.exists("pid"):
                empty_pid = run_dir
        self.run_dir = empty_pid
        return empty_pid

    async def status(self) -> Status | None:
        got = await self._slurp(self.path("rc"), 0, 4096)
        text = b"".join(got[0]) if got is not None else b""
        if not text.strip():
            return None
        return parse_status(text)

    async def pid(self) -> int | None:
        got = await self._slurp(self.path("pid"), 0, 64)
        try:
            return int(b"".join(got[0])) if got else None
        except ValueError:
            return None

    async def wait_pid(self, timeout: float) -> int | None:
        """The run's pid once its pid file is written; None if it is not within ``timeout``
        seconds (or the run ended first: then its status file is there instead)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.02
        while (pid := await self.pid()) is None and loop.time() < deadline:
            if await self.status() is not None:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)
        return pid

    async def alive(self) -> bool:
        """Whether the run's first process still exists (Linux guests; False elsewhere)."""
        pid = await self.pid()
        if pid is None or self.platform.separator != "/":
            return False
        handle = await self._open(f"/proc/{pid}/cmdline")
        if handle is None:
            return False
        await self._close(handle)
        return True

    async def wait_status(self, timeout: float) -> Status | None:
        """Wait for the run's status file while the run lives; None if it did not appear
        within ``timeout`` seconds or the run is gone without one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.05
        while True:
            status = await self.status()
            if status is not None or loop.time() >= deadline:
                return status
            if not await self.alive() and (status := await self.status()) is None:
                return None
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, 1.0)

    async def read_outputs(self, limit: int, status: Status | None, *,
                           inline: tuple[bytes, bytes] = (b"", b""),
                           already: tuple[Sequence[bytes], Sequence[bytes]] = ((), ())
                           ) -> tuple[StreamOutput, StreamOutput]:
        """Both output streams: from ``inline`` (the agent's reply) when the status says
        the whole stream is there, else from the run's file (skipped when empty; only past
        ``already``, the pieces of the file's start read while following the run: they
        become the output's first pieces, the same objects)."""
        code_page = status.code_page if status else None
        places = (status.stdout_at if status else None, status.stderr_at if status else None)
        outputs = []
        for kind, where, data, start in zip(("out", "err"), places, inline, already,
                                            strict=True):
            started = sum(len(p) for p in start)
            pieces: list[bytes]
            # (What was followed may go past the status: a background process of the
            # command may write on after it exited; the result then holds that too.)
            if where is Where.INLINE and started <= len(data):
                size = len(data)
                pieces = [data[:limit]]
            elif where is Where.EMPTY and not started:
                pieces, size = [], 0
            else:
                pieces = prefix(start, limit)
                kept = min(started, limit)
                got = await self._slurp(self.path(kind), kept, limit - kept)
                if got is not None:
                    pieces, size = [*pieces, *got[0]], got[1]
                else:
                    size = kept
            pieces = list(whole_characters(pieces))
            kept = sum(len(p) for p in pieces)
            outputs.append(StreamOutput(pieces, total_bytes=max(size, kept),
                                        truncated=size > kept,
                                        encoding=self.platform.decode(pieces, code_page)))
        return outputs[0], outputs[1]

