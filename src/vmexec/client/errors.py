"""What the client raises: one root, and one class per kind of failure.

::

    ClientError                  every failure of a client call
     ├── ApiError                the server answered with a ZStack ErrorCode (or a non-2xx reply)
     │    └── CommandTimedOut    ExecuteGuestVmCommand's VM.EXEC.1001, with the partial output
     ├── ConnectionFailed        the server could not be reached, or did not answer in time
     ├── NotLoggedIn             a call that needs a session was made without one
     └── VmNotFound              a VM named by uuid or name does not exist, or the name is ambiguous

``asyncio.CancelledError`` is never wrapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vmexec.zstack.errors import Code

if TYPE_CHECKING:
    from vmexec.client.models import ExecResult



class ClientError(Exception):
    """Root of the client's errors; ``str()`` is one readable line."""


class ApiError(ClientError):
    """A failed API call: ZStack's ErrorCode fields, plus the HTTP ``status``.

    ``code`` is ZStack's (``SYS.1007``, ``ID.1001``, ``VM.EXEC.1002`` ...). A reply that carries
    no ErrorCode (a proxy's error page, say) gets ``code`` ``HTTP.<status>`` and its text as
    ``details``. ``cause`` is the nested root error, ``opaque`` the structured extra data.
    """

    def __init__(self, status: int, code: str, description: str = "",
                 details: str | None = None, *, elaboration: str | None = None,
                 cause: ApiError | None = None, opaque: Mapping[str, Any] | None = None,
                 raw: Mapping[str, Any] | None = None) -> None:
        self.status = status
        self.code = code
        self.description = description
        self.details = details
        self.elaboration = elaboration
        self.cause = cause
        self.opaque: Mapping[str, Any] = opaque or {}
        #: The ErrorCode object as the server sent it (empty when it sent none).
        self.raw: Mapping[str, Any] = raw or {}
        super().__init__(str(self))

    def __str__(self) -> str:
        # details says what happened this time; description is the code's fixed text.
        return f"{self.code}: {self.details or self.description or 'failed'}"

    @classmethod
    def from_error_code(cls, status: int, error: Mapping[str, Any]) -> ApiError:
        """The error for a ZStack ErrorCode object (``{"code", "description", ...}``)."""
        cause = error.get("cause")
        kind = CommandTimedOut if error.get("code") == Code.VM_EXEC_TIMED_OUT else ApiError
        return kind(
            status, str(error.get("code") or f"HTTP.{status}"),
            str(error.get("description") or ""),
            None if error.get("details") is None else str(error["details"]),
            elaboration=None if error.get("elaboration") is None else str(error["elaboration"]),
            cause=cls.from_error_code(status, cause) if isinstance(cause, Mapping) else None,
            opaque=error.get("opaque") if isinstance(error.get("opaque"), Mapping) else None,
            raw=dict(error))

    @classmethod
    def from_reply(cls, status: int, body: object, text: str) -> ApiError:
        """The error for a non-2xx reply: its ``{"error": ErrorCode}``, or its plain text."""
        if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
            return cls.from_error_code(status, body["error"])
        return cls(status, f"HTTP.{status}", "unexpected reply", text.strip()[:500] or None)


class CommandTimedOut(ApiError):
    """The command did not finish within its timeout and was stopped (``VM.EXEC.1001``)."""

    @property
    def partial(self) -> ExecResult:
        """What the command wrote before it was stopped (from the error's ``opaque``)."""
        from vmexec.client.models import ExecResult

        return ExecResult.from_wire({"timedOut": True, **self.opaque})


class ConnectionFailed(ClientError):
    """The server could not be reached, or no reply came in time (``url`` says which)."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach {url}: {reason}")


class NotLoggedIn(ClientError):
    """A call that needs a session was made by a client that has none."""


class VmNotFound(ClientError):
    """No VM has this uuid or name, or several VMs share the name."""

    def __init__(self, ref: str, message: str) -> None:
        self.ref = ref
        super().__init__(message)
