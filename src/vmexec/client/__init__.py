"""A small typed client of vmexec's ZStack-compatible API (httpx; async, with a sync facade).

- :class:`AsyncClient` / :class:`Client`: login, logout, sessions, password changes, VM and
  host queries, ExecuteGuestVmCommand (``202`` + polling handled inside), hosts.
- Executions and runs: ``submit`` + ``follow`` (live output, an async iterator of
  :mod:`vmexec.client.events`), ``cancel``, ``query_executions``, ``get_execution``;
  ``start_run`` + ``follow_run``, ``get_run``, ``cancel_run``, ``query_runs``.
- :mod:`vmexec.client.models`: typed replies (``raw`` keeps the JSON as sent).
- :mod:`vmexec.client.errors`: ``ClientError`` and its subclasses, the only exceptions raised.
"""

from vmexec.client.client import AsyncClient
from vmexec.client.errors import (
    ApiError,
    ClientError,
    CommandTimedOut,
    ConnectionFailed,
    NotLoggedIn,
    VmNotFound,
)
from vmexec.client.events import (
    BadEvent,
    ExecutionEvent,
    OutputEvent,
    Result,
    RunEvent,
    RunFinished,
    TargetFinished,
    TargetOutput,
    TargetStarted,
)
from vmexec.client.models import (
    Account,
    ExecResult,
    Execution,
    Host,
    Run,
    RunTarget,
    Session,
    VmInstance,
)
from vmexec.client.sync import Client
from vmexec.zstack.passwords import sha512_hex

__all__ = [
    "Account",
    "ApiError",
    "AsyncClient",
    "BadEvent",
    "Client",
    "ClientError",
    "CommandTimedOut",
    "ConnectionFailed",
    "ExecResult",
    "Execution",
    "ExecutionEvent",
    "Host",
    "NotLoggedIn",
    "OutputEvent",
    "Result",
    "Run",
    "RunEvent",
    "RunFinished",
    "RunTarget",
    "Session",
    "TargetFinished",
    "TargetOutput",
    "TargetStarted",
    "VmInstance",
    "VmNotFound",
    "sha512_hex",
]
