"""ExecuteGuestVmCommand's enumerations on the wire."""

from __future__ import annotations

import base64
import codecs
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

API = "ExecuteGuestVmCommand"
#: The most stdin a command takes (``stdin`` as UTF-8, or ``stdinBase64`` decoded).
MAX_STDIN_BYTES = 1024 * 1024


class Platform(enum.StrEnum):
    LINUX = "Linux"
    WINDOWS = "Windows"


class Shell(enum.StrEnum):
    """vmexec extension ``params.shell``: how the command text is interpreted in the guest."""

    #: Linux: bash if present, else /bin/sh (a #! line wins); Windows: cmd.
    DEFAULT = "default"
    SH = "sh"
    BASH = "bash"
    CMD = "cmd"
    POWERSHELL = "powershell"


class ExecutionState(enum.StrEnum):
    """An execution's state (QueryGuestVmCommandExecution's ``state``)."""

    RUNNING = "Running"
    #: The command exited with 0.
    SUCCEEDED = "Succeeded"
    #: The command exited non-zero or was killed by a signal, or vmexec could not run it.
    FAILED = "Failed"
    TIMED_OUT = "TimedOut"
    CANCELLED = "Cancelled"


def _chomp(text: str) -> str:
    # ZStack's stream drops the one line end a command's output normally ends with.
    for end in ("\r\n", "\n"):
        if text.endswith(end):
            return text[: -len(end)]
    return text


def stream_text(stdout: str, stderr: str) -> str:
    """ZStack's ``stream`` field: ``"standardStream: <stdout>, errorStream: <stderr>"``."""
    return f"standardStream: {_chomp(stdout)}, errorStream: {_chomp(stderr)}"


#: Bytes, or the pieces they are kept in (in order).
Data = bytes | Sequence[bytes]
#: Bytes decoded at a time by :func:`is_utf8` (its text is not kept: 8 MiB of output checked
#: at once cost 8 MiB more at the server's peak).
_CHECK_BYTES = 64 * 1024


def is_utf8(data: Data) -> bool:
    """Whether ``data`` decodes as UTF-8 (its text then carries every byte)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for piece in (data,) if isinstance(data, bytes | bytearray) else data:
            if piece.isascii() and not decoder.getstate()[0]:
                continue
            view = memoryview(piece)
            for start in range(0, len(view), _CHECK_BYTES):
                decoder.decode(view[start:start + _CHECK_BYTES])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def exact_fields(stdout: Data, stderr: Data, *, always: bool = False) -> tuple[str, ...]:
    """The names of the ``stdoutBase64``/``stderrBase64`` fields a reply has: one for each
    stream whose text cannot carry its bytes (not UTF-8), both when ``always``
    (``"outputEncoding": "base64"``)."""
    return tuple(name for name, data in (("stdoutBase64", stdout), ("stderrBase64", stderr))
                 if always or not is_utf8(data))


def exact_output(stdout: bytes, stderr: bytes, *, always: bool = False) -> dict[str, str]:
    """vmexec's ``stdoutBase64``/``stderrBase64``: the exact bytes of the streams
    :func:`exact_fields` names."""
    data = {"stdoutBase64": stdout, "stderrBase64": stderr}
    return {name: base64.b64encode(data[name]).decode("ascii")
            for name in exact_fields(stdout, stderr, always=always)}


def chunk_data(data: bytes) -> dict[str, str]:
    """An output event's data: ``text`` always (readable), and ``base64`` when the chunk is
    not UTF-8 (its exact bytes)."""
    text = data.decode("utf-8", errors="replace")
    if is_utf8(data):
        return {"text": text}
    return {"text": text, "base64": base64.b64encode(data).decode("ascii")}


@dataclass(frozen=True, slots=True)
class CommandOutput:
    """What a command that ran left: ZStack's ``stream``, and vmexec's extensions."""

    stdout: str
    stderr: str
    exit_code: int | None
    signal: int | None
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    duration_ms: int
    #: The streams' bytes (see :func:`exact_output`).
    stdout_data: bytes = b""
    stderr_data: bytes = b""
    #: ``"outputEncoding": "base64"``: the bytes of both streams, UTF-8 or not.
    always_base64: bool = False

    def to_json(self) -> dict[str, Any]:
        """The output fields of the reply (also a timed-out error's ``opaque``); nulls left
        out."""
        fields = {
            "stream": stream_text(self.stdout, self.stderr), "exitCode": self.exit_code,
            "signal": self.signal, "stdout": self.stdout, "stderr": self.stderr,
            "stdoutTruncated": self.stdout_truncated, "stderrTruncated": self.stderr_truncated,
            "timedOut": self.timed_out, "durationMs": self.duration_ms,
            **exact_output(self.stdout_data, self.stderr_data, always=self.always_base64),
        }
        return {k: v for k, v in fields.items() if v is not None}

    def reply(self, vm_instance: Mapping[str, Any]) -> dict[str, Any]:
        """ExecuteGuestVmCommand's ``200`` reply (a command that ran, whatever its exit code)."""
        output = self.to_json()
        return {"success": True, "stream": output.pop("stream"),
                "vmInstance": dict(vm_instance), **output}
