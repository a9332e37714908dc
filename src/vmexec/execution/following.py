"""Following a run's output files while the command runs: new bytes as chunks.

Each stream's file is opened once and its handle kept while the run is followed, so a poll
costs one agent call per stream when nothing was written (``guest-file-seek`` to the end
answers the file's size) and three when something was (seek to the end, seek back, read):
never an open and a close per poll.  (qemu-ga's reads keep stdio's end-of-file flag, sticky
since glibc 2.28 and in musl: a seek is what clears it, so a read alone would see nothing
new.)  The handles are closed when the run ends or its stream is dropped; a vmexec that dies
while following leaves them open in the agent until it restarts (two per followed run).

Chunks are cut on UTF-8 character boundaries: an incomplete multibyte sequence at the end of
what was read is held back until the rest arrives (or the run ends), so every chunk of UTF-8
output decodes on its own.  Following stops at the run's ``max_output_bytes``: the result
holds no more either.
"""

from __future__ import annotations

import contextlib

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import GuestAgent
from vmexec.execution.guestfiles import READ_CHUNK, RunFiles
from vmexec.execution.models import OutputChunk, StreamName, StreamOutput

_KINDS = {StreamName.STDOUT: "out", StreamName.STDERR: "err"}
_SEEK_SET, _SEEK_END = 0, 2


def utf8_complete(data: bytes) -> int:
    """How many leading bytes of ``data`` end on a character boundary: all of them but an
    incomplete multibyte sequence at the end (bytes that are not UTF-8 are not held back:
    waiting would not make them decode)."""
    # A UTF-8 character is at most 4 bytes: only the last 3 can be an incomplete one.
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: its lead byte is further back
        if byte >= 0xF0:
            needed = 4 if byte < 0xF8 else 1
        elif byte >= 0xE0:
            needed = 3
        elif byte >= 0xC0:
            needed = 2
        else:
            needed = 1  # ASCII: complete
        return len(data) - back if needed > back else len(data)
    return len(data)


class StreamFollower:
    """One output stream of a run, followed in its file through one kept agent handle.

    What it reads is kept once: as the chunks it hands out (the caller keeps those same
    objects, e.g. for live readers), and the bytes not handed out yet; the result's output
    is their join (:meth:`read`), the one copy of it made here.
    """

    def __init__(self, agent: GuestAgent, path: str, name: StreamName, limit: int) -> None:
        self.agent = agent
        self.path = path
        self.name = name
        #: Bytes of the stream that may be handed out (the run's max_output_bytes).
        self.limit = limit
        self.handle: int | None = None
        #: The chunks handed out, in order.
        self._handed: list[bytes] = []
        #: Bytes read and not handed out yet (an incomplete character's, or a poll's).
        self._held = b""
        #: Bytes read from the file so far (handed out, then those held back).
        self.size = 0
        #: Bytes handed out as chunks (a prefix of what was read).
        self.handed_out = 0
        #: Whether the file had more bytes than the last poll read (poll again at once).
        self.more = False

    async def poll(self) -> None:
        """Read what was written to the file since the last poll (it waits until
        :meth:`take` hands it out).

        Raises: AgentError — transient: poll again once the agent answers.
        """
        self.more = False
        if self.size >= self.limit:
            return
        if self.handle is None:
            try:
                self.handle = await self.agent.file_open(self.path, "r")
            except agent_errors.AgentCommandDisabled:
                raise
            except agent_errors.AgentCommandError:
                return  # not there yet
        try:
            size = await self.agent.file_seek(self.handle, 0, _SEEK_END)
            want = min(size, self.limit) - self.size
            if want <= 0:
                return
            await self.agent.file_seek(self.handle, self.size, _SEEK_SET)
            chunk = await self.agent.file_read(self.handle, min(want, READ_CHUNK))
        except agent_errors.AgentCommandDisabled:
            raise
        except agent_errors.AgentCommandError:
            # The agent forgot the handle (it restarted): open the file again next time.
            self.handle = None
            return
        # (bytes + b"" is the same object: a read is not copied when nothing was held.)
        self._held += chunk.data
        self.size += len(chunk.data)
        self.more = 0 < len(chunk.data) < want

    def take(self) -> bytes:
        """The bytes read and not handed out yet, up to the last whole character."""
        held = self._held
        end = utf8_complete(held)
        new, self._held = (held, b"") if end == len(held) else (held[:end], held[end:])
        if new:
            self._handed.append(new)
            self.handed_out += len(new)
        return new

    def read(self) -> bytes:
        """Every byte read so far (handed out or not)."""
        return b"".join([*self._handed, self._held])

    async def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            with contextlib.suppress(agent_errors.AgentError):
                await self.agent.file_close(handle)


class OutputFollower:
    """Both output streams of one run, followed while it runs."""

    def __init__(self, files: RunFiles, limit: int) -> None:
        self.streams = [StreamFollower(files.agent, files.path(kind), name, limit)
                        for name, kind in _KINDS.items()]

    @property
    def more(self) -> bool:
        """Whether a stream had more to read than the last poll took."""
        return any(stream.more for stream in self.streams)

    async def poll(self) -> list[OutputChunk]:
        """New output of every stream since the last poll.

        Raises: AgentError — transient: poll again once the agent answers (nothing is lost:
        what one stream's read got waits for the next poll when the other's fails).
        """
        for stream in self.streams:
            await stream.poll()
        return [OutputChunk(stream.name, new) for stream in self.streams
                if (new := stream.take())]

    def already_read(self) -> tuple[bytes, bytes]:
        """What the polls read of each stream: the result's output starts with it."""
        out, err = self.streams
        return out.read(), err.read()

    def rest(self, stdout: StreamOutput, stderr: StreamOutput) -> list[OutputChunk]:
        """The part of the final output not handed out yet (the last chunk of each stream)."""
        chunks = []
        for stream, output in zip(self.streams, (stdout, stderr), strict=True):
            if tail := output.data[stream.handed_out:]:
                chunks.append(OutputChunk(stream.name, tail))
        return chunks

    async def close(self) -> None:
        for stream in self.streams:
            await stream.close()
