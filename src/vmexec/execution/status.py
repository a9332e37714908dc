"""The status line every guest supervisor (Linux and Windows) prints before the output.

``VMEXEC1 <exit code> exited|timeout <run dir> [o<0|1>e<0|1>] [cp<code page>]`` or
``VMEXEC1 setup <reason>``; the ``o/e`` flags say whether stdout / stderr have any bytes.
The run's ``.rc`` file holds the same fields without the tag.
"""

from __future__ import annotations

import re
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
    #: Whether stdout / stderr have any bytes (None: unknown, read the file to see).
    has_stdout: bool | None = None
    has_stderr: bool | None = None


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
    extra = parts[3:]
    code_page = next((p for p in extra if p.startswith("cp")), None)
    flags = next((p for p in extra if re.fullmatch(r"o[01]e[01]", p)), None)
    return Status(exit_code=exit_code, timed_out=parts[1] == "timeout",
                  run_dir=parts[2] if len(parts) > 2 else None, code_page=code_page,
                  has_stdout=flags[1] == "1" if flags else None,
                  has_stderr=flags[3] == "1" if flags else None)


def split_inline(stdout: bytes) -> tuple[Status | None, bytes]:
    """Split a supervisor's stdout into its status line and the command's own stdout."""
    if not stdout.startswith(TAG + b" "):
        return None, stdout
    line, _, rest = stdout.partition(b"\n")
    return parse_status(line[len(TAG) + 1:]), rest
