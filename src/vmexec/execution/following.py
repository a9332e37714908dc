"""Following a run's output files while the command runs: new bytes as chunks.

Each stream's file is opened once and its handle kept while the run is followed, so a poll
costs one agent call per stream when nothing was written (``guest-file-seek`` to the end
answers the file's size) and three when something was (seek to the end, seek back, read):
never an open and a close per poll.  (qemu-ga's reads keep stdio's end-of-file flag, sticky
since glibc 2.28 and in musl: a seek is what clears it, so a read alone would see nothing
new.)  A read takes at most :data:`~.guestfiles.OUTPUT_READ_CHUNK`; while the size last
seen holds more, the next poll reads on alone (no end reached, no flag set).  The handles
are closed when the run ends or its stream is dropped; a vmexec that dies while following
leaves them open in the agent until it restarts (two per followed run).

Chunks are cut on UTF-8 character boundaries: an incomplete multibyte sequence at the end of
what was read is held back until the rest arrives (or the run ends), so every chunk of UTF-8
output decodes on its own.  Following stops at the run's ``max_output_bytes``: the result
holds no more either.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import GuestAgent
from vmexec.execution.guestfiles import OUTPUT_READ_CHUNK, RunFiles
from vmexec.execution.models import OutputChunk, StreamName, StreamOutput
from vmexec.execution.utf8 import utf8_complete

_KINDS = {StreamName.STDOUT: "out", StreamName.STDERR: "err"}
_SEEK_SET, _SEEK_END = 0, 2


class StreamFollower:
    """One output stream of a run, followed in its file through one kept agent handle.

    What it reads is kept once: as the chunks it hands out (the caller keeps those same
    objects, e.g. for live readers), and the bytes not handed out yet; the result's output
    starts with those same pieces (:meth:`read`), never their join.
    """

    __slots__ = ("_handed", "_held", "_known_size", "agent", "handed_out", "handle", "limit",
                 "more", "name", "path", "size")

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
        #: The file's size when last asked, while the reads up to it need no seek (see poll).
        self._known_size = 0

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
        # Kept only when this poll's read takes all it asked for: after a fault the handle's
        # position is unknown (the agent may have read), so the next poll seeks.
        known, self._known_size = self._known_size, 0
        try:
            if known > self.size:
                # The last read stopped short of what the file had (it read a full piece):
                # the handle is where this one starts, and not at the end (no sticky
                # end-of-file flag to clear): read on, without two seeks.
                want = min(known, self.limit) - self.size
            else:
                known = await self.agent.file_seek(self.handle, 0, _SEEK_END)
                want = min(known, self.limit) - self.size
                if want <= 0:
                    return
                await self.agent.file_seek(self.handle, self.size, _SEEK_SET)
            asked = min(want, OUTPUT_READ_CHUNK)
            chunk = await self.agent.file_read(self.handle, asked)
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
        if len(chunk.data) == asked:
            self._known_size = known

    def take(self) -> bytes:
        """The bytes read and not handed out yet, up to the last whole character."""
        held = self._held
        end = utf8_complete(held)
        new, self._held = (held, b"") if end == len(held) else (held[:end], held[end:])
        if new:
            self._handed.append(new)
            self.handed_out += len(new)
        return new

    def read(self) -> list[bytes]:
        """Every byte read so far (handed out or not), in pieces: the chunks handed out (the
        same objects) and what is held back."""
        return [*self._handed, self._held] if self._held else list(self._handed)

    async def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            with contextlib.suppress(agent_errors.AgentError):
                await self.agent.file_close(handle)


def _always() -> bool:
    return True


class OutputFollower:
    """Both output streams of one run, followed while it runs; ``watched`` says whether
    someone reads them now (they are read at the live pace only then: see
    :mod:`.waiting`)."""

    __slots__ = ("streams", "watched")

    def __init__(self, files: RunFiles, limit: int,
                 watched: Callable[[], bool] | None = None) -> None:
        self.streams = [StreamFollower(files.agent, files.path(kind), name, limit)
                        for name, kind in _KINDS.items()]
        self.watched = watched or _always

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

    def already_read(self) -> tuple[list[bytes], list[bytes]]:
        """What the polls read of each stream, in pieces: the result's output starts with
        them."""
        out, err = self.streams
        return out.read(), err.read()

    def rest(self, stdout: StreamOutput, stderr: StreamOutput) -> list[OutputChunk]:
        """The part of the final output not handed out yet (the last chunks of each stream:
        its pieces, cut on characters)."""
        chunks: list[OutputChunk] = []
        for stream, output in zip(self.streams, (stdout, stderr), strict=True):
            chunks.extend(OutputChunk(stream.name, piece)
                          for piece in output.after(stream.handed_out))
        return chunks

    async def close(self) -> None:
        for stream in self.streams:
            await stream.close()
