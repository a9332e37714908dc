"""Errors of the exec service: why a command could not be run or its result not be had.

Exception tree::

    ExecError
     ├── InvalidExecRequest     the request itself is wrong (empty command, bad env name, ...)
     ├── GuestUnavailable       the guest agent cannot be reached; ``reason`` says why
     ├── ExecDisabled           guest-exec is disabled in the guest agent
     ├── GuestSetupError        the guest cannot run it as asked; ``reason`` says why
     ├── ResultLost             the command ran but its result could not be recovered
     ├── OutputNotStored        the guest could not store the command's output (disk full)
     └── GuestFileError         a file could not be copied in or out; ``problem`` says why

A command that ran and exited non-zero, or that timed out, is a result, not an error.
"""

from __future__ import annotations

import enum


class UnavailableReason(enum.StrEnum):
    VM_NOT_FOUND = "vm-not-found"
    VM_NOT_RUNNING = "vm-not-running"
    #: Paused all the time the command could wait (a paused VM is waited for, not refused).
    VM_PAUSED = "vm-paused"
    NO_AGENT_CHANNEL = "no-agent-channel"
    AGENT_NOT_CONNECTED = "agent-not-connected"
    AGENT_NOT_RESPONDING = "agent-not-responding"
    HOST_UNREACHABLE = "host-unreachable"


class SetupReason(enum.StrEnum):
    INTERPRETER_MISSING = "interpreter-missing"
    WORKING_DIRECTORY_MISSING = "working-directory-missing"
    USER_MISSING = "user-missing"
    RUN_AS_UNSUPPORTED = "run-as-unsupported"
    SPAWN_FAILED = "spawn-failed"


class ExecError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidExecRequest(ExecError):
    pass


class GuestUnavailable(ExecError):
    def __init__(self, message: str, reason: UnavailableReason) -> None:
        super().__init__(message)
        self.reason = reason


class ExecDisabled(ExecError):
    pass


class GuestSetupError(ExecError):
    def __init__(self, message: str, reason: SetupReason) -> None:
        super().__init__(message)
        self.reason = reason


class ResultLost(ExecError):
    pass


class OutputNotStored(ExecError):
    """The guest could not write the run's files (its disk is full, or read-only).

    ``ran``: the command ran (its output is incomplete; ``exit_code`` is what it returned),
    or it was never started (no run directory of the guest could take its files).
    """

    def __init__(self, message: str, *, ran: bool, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.ran = ran
        self.exit_code = exit_code


class FileProblem(enum.StrEnum):
    """Why a file could not be copied into or out of a guest."""

    NOT_FOUND = "not-found"
    PERMISSION_DENIED = "permission-denied"
    DISK_FULL = "disk-full"
    IS_DIRECTORY = "is-a-directory"
    TOO_LARGE = "too-large"
    UNSUPPORTED = "unsupported"
    FAILED = "failed"


class GuestFileError(ExecError):
    def __init__(self, message: str, problem: FileProblem) -> None:
        super().__init__(message)
        self.problem = problem
