"""A run's files in the guest (script, output, status), read through ``guest-file-*``.

They are what makes a result independent of any single agent reply: the output beyond what
came inline, the status after a lost reply or a restart, and output while a command runs.
"""

from __future__ import annotations

import asyncio
import contextlib

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import GuestAgent
from vmexec.execution.models import OutputChunk, StreamName, StreamOutput
from vmexec.execution.platform import GuestPlatform
from vmexec.execution.status import Status, parse_status

READ_CHUNK = 4 * 1024 * 1024
_STREAMS = {StreamName.STDOUT: "out", StreamName.STDERR: "err"}


class RunFiles:
    def __init__(self, agent: GuestAgent, platform: GuestPlatform, run_id: str,
                 run_dir: str | None) -> None:
        self.agent = agent
        self.platform = platform
        self.run_id = run_id
        self.run_dir = run_dir
        #: Bytes of each stream already handed out while following the run.
        self.streamed: dict[StreamName, int] = dict.fromkeys(StreamName, 0)

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

    async def _read(self, handle: int, limit: int) -> bytes:
        parts: list[bytes] = []
        left = limit
        while left > 0:
            chunk = await self.agent.file_read(handle, min(READ_CHUNK, left))
            parts.append(chunk.data)
            left -= len(chunk.data)
            if chunk.eof or not chunk.data:
                break
        return b"".join(parts)

    async def _slurp(self, path: str, offset: int, limit: int) -> tuple[bytes, int] | None:
        """Read ``limit`` bytes from ``offset``; returns them and the file's size."""
        handle = await self._open(path)
        if handle is None:
            return None
        try:
            size = await self.agent.file_seek(handle, 0, 2)
            await self.agent.file_seek(handle, offset, 0)
            data = await self._read(handle, min(limit, max(0, size - offset)))
        finally:
            with contextlib.suppress(agent_errors.AgentError):
                await self.agent.file_close(handle)
        return data, size

    async def locate(self) -> str | None:
        """Find the directory that holds this run's files (None: no trace of the run)."""
        candidates = [self.run_dir] if self.run_dir else []
        candidates += [d for d in self.platform.run_dirs if d not in candidates]
        for run_dir in candidates:
            for kind in ("pid", "rc", "sh"):
                handle = await self._open(self.path(kind, run_dir))
                if handle is not None:
                    with contextlib.suppress(agent_errors.AgentError):
                        await self.agent.file_close(handle)
                    self.run_dir = run_dir
                    return run_dir
        return None

    async def status(self) -> Status | None:
        got = await self._slurp(self.path("rc"), 0, 4096)
        if got is None or not got[0].strip():
            return None
        return parse_status(got[0])

    async def wait_status(self, timeout: float | None) -> Status | None:
        """Wait for the run's status file; None if it did not appear within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout if timeout is not None else 86_400 + 60)
        delay = 0.05
        while True:
            status = await self.status()
            if status is not None or loop.time() >= deadline:
                return status
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, 1.0)

    async def read_output(self, kind: str, limit: int, code_page: str | None) -> StreamOutput:
        got = await self._slurp(self.path(kind), 0, limit)
        data, size = got if got is not None else (b"", 0)
        return self._output(data, size, code_page)

    async def complete(self, kind: str, inline: bytes, agent_truncated: bool, limit: int,
                       code_page: str | None) -> StreamOutput:
        """Turn inline output into the stream's result, reading from the file what is missing."""
        if len(inline) > limit:
            # The supervisor printed one byte past the limit: there is more than we keep.
            got = await self._slurp(self.path(kind), 0, 0)
            size = got[1] if got is not None else len(inline)
            return self._output(inline[:limit], max(size, len(inline)), code_page)
        if not agent_truncated:
            return self._output(inline, len(inline), code_page)
        got = await self._slurp(self.path(kind), len(inline), limit - len(inline))
        if got is None:
            return self._output(inline, len(inline), code_page, truncated=True)
        rest, size = got
        return self._output(inline + rest, size, code_page)

    def _output(self, data: bytes, size: int, code_page: str | None, *,
                truncated: bool = False) -> StreamOutput:
        return StreamOutput(data=data, total_bytes=max(size, len(data)),
                            truncated=truncated or size > len(data),
                            encoding=self.platform.decode(data, code_page))

    async def read_new(self) -> list[OutputChunk]:
        """Output written since the last call (for streaming), from every stream."""
        if self.run_dir is None and await self.locate() is None:
            return []
        chunks = []
        for name, kind in _STREAMS.items():
            got = await self._slurp(self.path(kind), self.streamed[name], READ_CHUNK)
            if got and got[0]:
                self.streamed[name] += len(got[0])
                chunks.append(OutputChunk(name, got[0]))
        return chunks
