"""The status line every guest supervisor (Linux and Windows) prints before the output.

``VMEXEC1 <exit code> exited|timeout <run dir> [o<N>e<N>] [cp<code page>] [unstored]`` or
``VMEXEC1 setup <reason>``; the ``o/e`` flags say where stdout / stderr are (:class:`Where`);
``unstored``: the run's files could not be written (a full disk), its output is incomplete.
The run's ``.rc`` file holds the same fields without the tag.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

TAG = b"VMEXEC1"


class Where(enum.IntEnum):
    """Where a stream's bytes are."""

    EMPTY = 0   # nowhere: the command wrote nothing to it
    FILE = 1    # in the run's file only
    INLINE = 2  # in the agent's reply too (the whole stream, after the status line)


@dataclass(frozen=True, slots=True)
class Status:
    exit_code: int | None
    timed_out: bool = False
    setup_error: str | None = None
    #: The guest directory that holds the run's files.
    run_dir: str | None = None
    #: Code page the guest's console uses (Windows), e.g. ``cp936``.
    code_page: str | None = None
    #: Where stdout / stderr are (None: unknown, read the file to see).
    stdout_at: Where | None = None
    stderr_at: Where | None = None
    #: The guest could not write the run's files (its disk is full): output is incomplete.
    unstored: bool = False


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
    flags = next((m for p in extra if (m := re.fullmatch(r"o([012])e([012])", p))), None)
    return Status(exit_code=exit_code, timed_out=parts[1] == "timeout",
                  run_dir=parts[2] if len(parts) > 2 else None, code_page=code_page,
                  stdout_at=Where(int(flags[1])) if flags else None,
                  stderr_at=Where(int(flags[2])) if flags else None,
                  unstored="unstored" in extra)


def split_inline(stdout: bytes) -> tuple[Status | None, bytes]:
    """Split a supervisor's stdout into its status line and the command's own stdout."""
    if not stdout.startswith(TAG + b" "):
        return None, stdout
    line, _, rest = stdout.partition(b"\n")
    return parse_status(line[len(TAG) + 1:]), rest
