"""The status line every guest supervisor (Linux and Windows) prints before the output.

``VMEXEC1 <exit code> exited|timeout <run dir> [cp<code page>]`` or ``VMEXEC1 setup <reason>``.
The run's ``.rc`` file holds the same fields without the tag.
"""

from __future__ import annotations

from dataclasses import dataclass

TAG = b"VMEXEC1"


@dataclass(frozen=True, slots=True)
class Status:
    exit_code: int | None
    timed_out: bool = False
    setup_error: str | None = None
    #: The guest directory that holds the run's files.
    run_dir: str | None = None
    #: Code page the guest's console uses (Windows), e.g. ``cp936``.
    code_page: str | None = None


def parse_status(line: bytes) -> Status | None:
    """Parse the fields of a status line (or of an ``.rc`` file); None if they make no sense."""
    parts = line.decode("utf-8", errors="replace").split()
    if len(parts) < 2:
        return None
    if parts[0] == "setup":
        return Status(exit_code=None, setup_error=parts[1])
    try:
        exit_code = int(parts[0])
    except ValueError:
        return None
    code_page = parts[3] if len(parts) > 3 and parts[3].startswith("cp") else None
    return Status(exit_code=exit_code, timed_out=parts[1] == "timeout",
                  run_dir=parts[2] if len(parts) > 2 else None, code_page=code_page)


def split_inline(stdout: bytes) -> tuple[Status | None, bytes]:
    """Split a supervisor's stdout into its status line and the command's own stdout."""
    if not stdout.startswith(TAG + b" "):
        return None, stdout
    line, _, rest = stdout.partition(b"\n")
    return parse_status(line[len(TAG) + 1:]), rest
