"""What a run's request may be and what its end turns into: pure functions, no guest.

:func:`validate` checks a request before anything is sent; :func:`exec_result` and
:func:`setup_error` build what a run that ended returns or raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from vmexec.agent.client import ExecStatus
from vmexec.execution import errors
from vmexec.execution.models import (
    MAX_COMMAND_CHARS,
    MAX_ENV_BYTES,
    MAX_STDIN_BYTES,
    MAX_TIMEOUT_SECONDS,
    ExecRequest,
    ExecResult,
    Outcome,
    StreamOutput,
)
from vmexec.execution.status import Status
from vmexec.zstack.ids import new_uuid


def new_run_id() -> str:
    """A run id when the caller gives none: a ZStack UUID, as the API's job UUIDs are."""
    return new_uuid()


def now() -> datetime:
    return datetime.now(UTC)


def validate(request: ExecRequest) -> None:
    """Raises: InvalidExecRequest."""
    if not request.command.strip():
        raise errors.InvalidExecRequest("command is empty")
    if len(request.command) > MAX_COMMAND_CHARS:
        raise errors.InvalidExecRequest(f"command is longer than {MAX_COMMAND_CHARS} characters")
    if not 0 < request.timeout <= MAX_TIMEOUT_SECONDS:
        raise errors.InvalidExecRequest(
            f"timeout must be more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds")
    if request.max_output_bytes < 0:
        raise errors.InvalidExecRequest("maxOutputBytes must not be negative")
    if request.stdin and len(request.stdin) > MAX_STDIN_BYTES:
        raise errors.InvalidExecRequest(f"stdin is larger than {MAX_STDIN_BYTES} bytes")
    env_bytes = sum(len(f"{name}={value}".encode()) for name, value in request.env.items())
    if env_bytes > MAX_ENV_BYTES:
        raise errors.InvalidExecRequest(
            f"the environment takes {env_bytes} bytes as NAME=VALUE entries; "
            f"at most {MAX_ENV_BYTES} are accepted")


def shell_status(reply: ExecStatus) -> int | None:
    """The agent's final status of a process as a shell would report it."""
    if reply.signal is not None:
        return 128 + reply.signal  # as a shell reports a process killed by a signal
    return reply.exit_code


def setup_error(status: Status, stderr: bytes, run_dirs: Sequence[str]) -> errors.ExecError:
    """The error for a run whose launch failed before the command ran."""
    message = stderr.decode("utf-8", errors="replace").strip()
    if status.setup_error == "run-dir-unwritable":  # the last of the run directories, too
        return errors.OutputNotStored(
            f"the guest could not store the run's files in any of {', '.join(run_dirs)} "
            f"({message or 'not writable'}): the command did not run", ran=False)
    known = {r.value for r in errors.SetupReason}
    reason = errors.SetupReason(status.setup_error) if status.setup_error in known \
        else errors.SetupReason.SPAWN_FAILED
    return errors.GuestSetupError(message or reason.value, reason)


def outcome_of(*, cancelled: bool, timed_out: bool) -> Outcome:
    """A cancel that took effect wins over the deadline's kill (it came first, or the
    command was being stopped anyway)."""
    if cancelled:
        return Outcome.CANCELLED
    return Outcome.TIMED_OUT if timed_out else Outcome.EXITED


def exec_result(run_id: str, code: int | None, outcome: Outcome, stdout: StreamOutput,
                stderr: StreamOutput, started: datetime, finished: datetime) -> ExecResult:
    # POSIX shells report "killed by signal N" as status 128+N.
    signal = code - 128 if code is not None and 128 < code <= 128 + 64 else None
    return ExecResult(
        run_id=run_id, outcome=outcome,
        exit_code=code, signal=signal, stdout=stdout, stderr=stderr,
        started_at=started, finished_at=finished,
    )
