"""ExecuteGuestVmCommand's enumerations on the wire."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

API = "ExecuteGuestVmCommand"


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

    def to_json(self) -> dict[str, Any]:
        """The output fields of the reply (also a timed-out error's ``opaque``); nulls left
        out."""
        fields = {
            "stream": stream_text(self.stdout, self.stderr), "exitCode": self.exit_code,
            "signal": self.signal, "stdout": self.stdout, "stderr": self.stderr,
            "stdoutTruncated": self.stdout_truncated, "stderrTruncated": self.stderr_truncated,
            "timedOut": self.timed_out, "durationMs": self.duration_ms,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def reply(self, vm_instance: Mapping[str, Any]) -> dict[str, Any]:
        """ExecuteGuestVmCommand's ``200`` reply (a command that ran, whatever its exit code)."""
        output = self.to_json()
        return {"success": True, "stream": output.pop("stream"),
                "vmInstance": dict(vm_instance), **output}
