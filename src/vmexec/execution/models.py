"""What the exec service takes and gives: internal types, separate from any wire schema."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

# The wire's names are the engine's: one Platform and one Shell.
from vmexec.zstack.exec import MAX_STDIN_BYTES as MAX_STDIN_BYTES
from vmexec.zstack.exec import Platform as Platform
from vmexec.zstack.exec import Shell as Shell

#: The guest agent's own cap on captured output per stream.
AGENT_OUTPUT_CAP = 16 * 1024 * 1024
MAX_COMMAND_CHARS = 65_536
MAX_TIMEOUT_SECONDS = 86_400
# Larger stdin and environments reach a Linux guest as run files written in pieces before the
# launch (one agent request must stay small: see vmexec.agent.protocol.SAFE_REQUEST_BYTES).
# MAX_STDIN_BYTES is the wire's (the CLI checks it too).
#: The environment as NAME=VALUE entries, all together.
MAX_ENV_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """One command to run in one guest.

    ``command`` is a script (multi-line text), as in ZStack's ExecuteGuestVmCommand.
    """

    command: str
    platform: Platform = Platform.LINUX
    timeout: float = 60.0
    stdin: bytes | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    working_directory: str | None = None
    run_as: str | None = None
    shell: Shell = Shell.DEFAULT
    max_output_bytes: int = AGENT_OUTPUT_CAP
    #: The reply carries both streams' bytes as base64 (``"outputEncoding": "base64"``); a
    #: concern of the reply only, kept with the request so that a resumed one answers alike.
    output_base64: bool = False


@dataclass(frozen=True, slots=True, init=False, eq=False)
class StreamOutput:
    """One output stream of a finished command.

    Its bytes are kept in the pieces they were read in (:attr:`pieces`), never joined by the
    engine: a followed command's pieces are the very chunks it handed out (which live readers
    keep), so its output is in memory once, not again as their join (issue 15). Pieces of
    UTF-8 output end on character boundaries (each decodes alone, as the chunks do).
    """

    pieces: tuple[bytes, ...]
    #: Bytes kept (of all pieces).
    size: int
    #: Bytes the command wrote to the stream, including any not kept.
    total_bytes: int
    truncated: bool
    #: Text decoding used for :attr:`text` (utf-8, or the Windows console code page).
    encoding: str

    def __init__(self, data: bytes | Iterable[bytes] = b"", total_bytes: int = 0,
                 truncated: bool = False, encoding: str = "utf-8") -> None:
        pieces = (bytes(data),) if isinstance(data, bytes | bytearray | memoryview) else data
        object.__setattr__(self, "pieces", tuple(p for p in pieces if p))
        object.__setattr__(self, "size", sum(len(p) for p in self.pieces))
        object.__setattr__(self, "total_bytes", total_bytes)
        object.__setattr__(self, "truncated", truncated)
        object.__setattr__(self, "encoding", encoding)

    @property
    def data(self) -> bytes:
        """All the bytes (a copy of them when there are several pieces)."""
        return self.pieces[0] if len(self.pieces) == 1 else b"".join(self.pieces)

    @property
    def text(self) -> str:
        return self.data.decode(self.encoding, errors="replace")

    def after(self, offset: int) -> list[bytes]:
        """The pieces of the bytes after the first ``offset`` (only a piece that ``offset``
        cuts is copied, its rest)."""
        rest: list[bytes] = []
        start = 0
        for piece in self.pieces:
            end = start + len(piece)
            if end > offset:
                rest.append(piece if start >= offset else piece[offset - start:])
            start = end
        return rest

    def _key(self) -> tuple[bytes, int, bool, str]:
        return self.data, self.total_bytes, self.truncated, self.encoding

    def __eq__(self, other: object) -> bool:
        # The same bytes however they are cut into pieces.
        if not isinstance(other, StreamOutput):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


class Outcome(enum.StrEnum):
    EXITED = "exited"        # exited on its own (exit_code set, maybe signal)
    TIMED_OUT = "timed_out"  # killed by vmexec because the timeout passed
    CANCELLED = "cancelled"  # stopped by Executor.cancel (or never started: exit_code None)


@dataclass(frozen=True, slots=True)
class ExecResult:
    run_id: str
    outcome: Outcome
    exit_code: int | None
    #: Signal number that ended the command, when it was killed by one.
    signal: int | None
    stdout: StreamOutput
    stderr: StreamOutput
    started_at: datetime
    finished_at: datetime

    @property
    def timed_out(self) -> bool:
        return self.outcome is Outcome.TIMED_OUT

    @property
    def cancelled(self) -> bool:
        return self.outcome is Outcome.CANCELLED

    @property
    def duration_ms(self) -> int:
        return round((self.finished_at - self.started_at).total_seconds() * 1000)


class StreamName(enum.StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True, slots=True)
class OutputChunk:
    """Output that appeared while a command runs (for streaming).

    A stream's chunks come in the order written and are cut on UTF-8 character boundaries
    (each decodes alone, if the output is UTF-8); together they are that stream's
    :attr:`StreamOutput.data` in the result.
    """

    stream: StreamName
    data: bytes
