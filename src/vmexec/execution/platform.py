"""What differs between guest operating systems, behind one small contract.

Each platform supplies a supervisor that runs the command (see :mod:`.linux`, :mod:`.windows`),
the guest paths of a run's files, and how to kill or clean up a run.  The engine knows nothing
else about the guest OS.
"""

from __future__ import annotations

import abc
import enum
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from vmexec.execution.errors import InvalidExecRequest
from vmexec.execution.models import ExecRequest

#: Tenths of a second between TERM and KILL when a run is killed (cut short when it is gone).
KILL_GRACE = 20
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def check_run_id(run_id: str) -> str:
    """Run ids go into guest file names and shell text: only 32 lowercase hex digits."""
    if not _RUN_ID.match(run_id):
        raise InvalidExecRequest(f"run id must be 32 lowercase hex digits, not {run_id!r}")
    return run_id


class KillReason(enum.StrEnum):
    """Why a run is killed: the marker file a kill leaves (``<run id>.timeout``), so that
    a vmexec that restarts knows how the run ended."""

    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Launch:
    """One ``guest-exec``: program, arguments and stdin data."""

    path: str
    args: Sequence[str]
    input_data: bytes | None = None
    #: Whether the agent pipes stdout/stderr back (only setup messages travel that way).
    capture_output: bool = True


class GuestPlatform(abc.ABC):
    #: Directories a supervisor may keep run files in, in its order of preference.
    run_dirs: tuple[str, ...]
    separator: str = "/"
    #: Inputs that can travel as run files written before the launch (``guest-file-write``,
    #: in small pieces) when the launch request would be too large, in the order to move them.
    stageable: tuple[str, ...] = ()

    @abc.abstractmethod
    def launch(self, request: ExecRequest, run_id: str, *, run_dir: str,
               interpreter: str, staged: Collection[str] = ()) -> Launch:
        """The guest-exec that runs ``request`` as run ``run_id``, keeping its files in
        ``run_dir``; ``interpreter`` is the guest's default shell (Linux); the inputs named
        in ``staged`` are in the run's files already (see :meth:`staged_input`).

        Raises:
            InvalidExecRequest: the request cannot be expressed on this platform.
        """

    def staged_input(self, request: ExecRequest, kind: str) -> bytes:
        """What the run file ``kind`` (one of :attr:`stageable`) holds when that input is
        staged; empty when the request has no such input."""
        raise NotImplementedError(kind)

    def make_run_dir(self, run_dir: str) -> Launch | None:
        """A guest-exec that creates ``run_dir`` (None: the platform's supervisor does)."""
        return None

    @abc.abstractmethod
    def kill(self, run_id: str, pid: int | None, run_dir: str, *,
             why: KillReason = KillReason.TIMEOUT) -> Launch:
        """A guest-exec that kills every process of run ``run_id`` (``pid``: its first),
        leaving the marker file ``<run id>.<why>`` in ``run_dir`` first."""

    def watchdog(self, run_id: str, pid: int, run_dir: str, seconds: float) -> Launch | None:
        """A guest-exec that kills the run after ``seconds`` even if vmexec is gone (None: the
        platform's supervisor enforces the timeout itself)."""
        return None

    def find_run(self, run_id: str, run_dir: str) -> Launch | None:
        """A guest-exec that exits 0 when a process of run ``run_id`` (launched with
        ``run_dir``) exists, even one that has not written its pid file yet; else non-zero.
        None: the platform cannot tell."""
        return None

    @abc.abstractmethod
    def cleanup(self, run_dir: str, run_ids: Sequence[str], retention: float | None) -> Launch:
        """A guest-exec that deletes the files of runs ``run_ids`` in ``run_dir``, and (unless
        ``retention`` is None) those of every run there whose files are older than
        ``retention`` seconds."""

    def remove(self, run_dir: str, run_ids: Sequence[str]) -> Launch | None:
        """A guest-exec that deletes the files of runs ``run_ids`` (all known to have
        ended) and nothing else, cheaper than :meth:`cleanup`; None: use that."""
        return None

    def file(self, run_dir: str, run_id: str, kind: str) -> str:
        return f"{run_dir}{self.separator}{run_id}.{kind}"

    def decode(self, data: Sequence[bytes], code_page: str | None) -> str:
        """Pick the text encoding of output (``data``: its pieces): UTF-8, else the guest
        console's code page."""
        return "utf-8"
