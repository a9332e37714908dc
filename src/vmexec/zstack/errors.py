"""ZStack's ErrorCode: the object every failed API call answers with, and the codes vmexec uses.

``description`` is the fixed text of the code, ``details`` says what happened this time; null
fields are left out on the wire, as ZStack's JSON writer does. Codes (vmexec-specific ones are
``VM.EXEC.*``), with the HTTP status the server answers them with::

    SYS.1000  503  internal error
    SYS.1001  503  timeout (not of a command: of vmexec itself)
    SYS.1003  404  resource not found (async job unknown or expired)
    SYS.1006  503  operation error
    SYS.1007  503  invalid argument value (400 when the request cannot be read at all)
    SYS.1008  404  no API at this path / method
    ID.1000   503  wrong account name or password
    ID.1001   503  invalid or expired session
    ID.1002   503  permission denied (e.g. UpdateAccount of another account)
    ID.1008   503  login refused for now: too many failed logins (of the account or from the
                   address) or too many at once; ``details`` and the ``Retry-After`` header
                   say after how many seconds (vmexec's: ZStack's identity codes stop at 1007)
    VM.EXEC.1001  503  the command timed out; ``opaque`` holds the partial output
    VM.EXEC.1002  503  the VM is not running
    VM.EXEC.1003  503  the guest agent cannot be reached (no channel, not connected, no answer)
    VM.EXEC.1004  503  the guest agent is disabled for this VM (SetVmQga enable=false)
    VM.EXEC.1005  503  guest-exec is disabled inside the guest agent
    VM.EXEC.1006  503  the guest cannot run the command as asked (no shell/user/directory)
    VM.EXEC.1007  503  the command ran but its result was lost
    VM.EXEC.1008  503  the VM's host cannot be reached
    VM.EXEC.1009  503  the guest could not store the command's output (its disk is full)
    VM.EXEC.1010  503  the command was cancelled (CancelGuestVmCommand); ``opaque`` holds the
                       output so far
    VM.EXEC.1020  503  file copy: no such file or directory in the guest
    VM.EXEC.1021  503  file copy: permission denied in the guest (or a read-only file system)
    VM.EXEC.1022  503  file copy: the guest's disk is full
    VM.EXEC.1023  503  file copy: the path is a directory
    VM.EXEC.1024  503  file copy failed otherwise (too large, a Windows guest, ...)
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Code(enum.StrEnum):
    # ZStack's own (SysErrors, IdentityErrors)
    SYS_INTERNAL = "SYS.1000"
    SYS_TIMEOUT = "SYS.1001"
    SYS_RESOURCE_NOT_FOUND = "SYS.1003"
    SYS_OPERATION_ERROR = "SYS.1006"
    SYS_INVALID_ARGUMENT = "SYS.1007"
    SYS_UNKNOWN_API = "SYS.1008"
    ID_AUTHENTICATION = "ID.1000"
    ID_INVALID_SESSION = "ID.1001"
    ID_PERMISSION_DENIED = "ID.1002"
    # vmexec's, in ZStack's identity range (ZStack's own stop at ID.1007)
    ID_LOGIN_THROTTLED = "ID.1008"
    # vmexec's, for ExecuteGuestVmCommand
    VM_EXEC_TIMED_OUT = "VM.EXEC.1001"
    VM_EXEC_VM_NOT_RUNNING = "VM.EXEC.1002"
    VM_EXEC_AGENT_UNAVAILABLE = "VM.EXEC.1003"
    VM_EXEC_QGA_DISABLED = "VM.EXEC.1004"
    VM_EXEC_EXEC_DISABLED = "VM.EXEC.1005"
    VM_EXEC_GUEST_SETUP = "VM.EXEC.1006"
    VM_EXEC_RESULT_LOST = "VM.EXEC.1007"
    VM_EXEC_HOST_UNREACHABLE = "VM.EXEC.1008"
    VM_EXEC_OUTPUT_NOT_STORED = "VM.EXEC.1009"
    VM_EXEC_CANCELLED = "VM.EXEC.1010"
    VM_EXEC_FILE_NOT_FOUND = "VM.EXEC.1020"
    VM_EXEC_FILE_PERMISSION_DENIED = "VM.EXEC.1021"
    VM_EXEC_FILE_DISK_FULL = "VM.EXEC.1022"
    VM_EXEC_FILE_IS_DIRECTORY = "VM.EXEC.1023"
    VM_EXEC_FILE_FAILED = "VM.EXEC.1024"


#: The fixed ``description`` of each code (ZStack's wording where ZStack has the code).
DESCRIPTIONS: Mapping[Code, str] = {
    Code.SYS_INTERNAL: "An internal error happened in system",
    Code.SYS_TIMEOUT: "An operation timed out",
    Code.SYS_RESOURCE_NOT_FOUND: "Resource is not found",
    Code.SYS_OPERATION_ERROR: "An operation failed",
    Code.SYS_INVALID_ARGUMENT: "One or more API argument is invalid",
    Code.SYS_UNKNOWN_API: "No such API",
    Code.ID_AUTHENTICATION: "Authentication failed",
    Code.ID_INVALID_SESSION: "Session expired or invalid",
    Code.ID_PERMISSION_DENIED: "Permission denied",
    Code.ID_LOGIN_THROTTLED: "Too many failed logins; retry later",
    Code.VM_EXEC_TIMED_OUT: "The command did not finish within its timeout",
    Code.VM_EXEC_VM_NOT_RUNNING: "The VM is not running",
    Code.VM_EXEC_AGENT_UNAVAILABLE: "The guest agent of the VM cannot be reached",
    Code.VM_EXEC_QGA_DISABLED: "The guest agent is disabled for this VM",
    Code.VM_EXEC_EXEC_DISABLED: "Command execution is disabled in the guest agent",
    Code.VM_EXEC_GUEST_SETUP: "The guest cannot run the command as requested",
    Code.VM_EXEC_RESULT_LOST: "The command ran but its result could not be recovered",
    Code.VM_EXEC_HOST_UNREACHABLE: "The host of the VM cannot be reached",
    Code.VM_EXEC_OUTPUT_NOT_STORED: "The guest could not store the command's output",
    Code.VM_EXEC_CANCELLED: "The command was cancelled",
    Code.VM_EXEC_FILE_NOT_FOUND: "No such file or directory in the guest",
    Code.VM_EXEC_FILE_PERMISSION_DENIED: "Permission denied in the guest",
    Code.VM_EXEC_FILE_DISK_FULL: "The guest's disk is full",
    Code.VM_EXEC_FILE_IS_DIRECTORY: "The path is a directory in the guest",
    Code.VM_EXEC_FILE_FAILED: "The file could not be copied",
}


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """ZStack's ErrorCode. ``code`` is a string: a client may meet codes this table lacks."""

    code: str
    description: str = ""
    details: str | None = None
    elaboration: str | None = None
    cause: ErrorCode | None = None
    #: Free-form structured data (e.g. the partial output of a timed-out command).
    opaque: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, code: Code, details: str | None = None, *, cause: ErrorCode | None = None,
           opaque: Mapping[str, Any] | None = None) -> ErrorCode:
        """The ErrorCode for one of vmexec's codes, with its fixed description."""
        return cls(str(code), DESCRIPTIONS[code], details, cause=cause, opaque=opaque)

    def to_json(self) -> dict[str, Any]:
        """The JSON object, null fields left out."""
        body: dict[str, Any] = {"code": self.code, "description": self.description}
        if self.details is not None:
            body["details"] = self.details
        if self.elaboration is not None:
            body["elaboration"] = self.elaboration
        if self.cause is not None:
            body["cause"] = self.cause.to_json()
        if self.opaque is not None:
            body["opaque"] = dict(self.opaque)
        return body

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ErrorCode:
        """The ErrorCode of a JSON object as a server sent it (unknown fields are dropped)."""
        cause = data.get("cause")
        opaque = data.get("opaque")
        return cls(code=str(data.get("code") or ""),
                   description=str(data.get("description") or ""),
                   details=_text(data.get("details")),
                   elaboration=_text(data.get("elaboration")),
                   cause=cls.from_json(cause) if isinstance(cause, Mapping) else None,
                   opaque=opaque if isinstance(opaque, Mapping) else None)

    def __str__(self) -> str:
        return f"{self.code} {self.description}" + (f": {self.details}" if self.details else "")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
