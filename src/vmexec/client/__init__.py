"""A small typed client of vmexec's ZStack-compatible API (httpx; async, with a sync facade).

- :class:`AsyncClient` / :class:`Client`: login, logout, sessions, password changes, VM and
  host queries, ExecuteGuestVmCommand (``202`` + polling handled inside), hosts.
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
from vmexec.client.models import Account, ExecResult, Host, Session, VmInstance
from vmexec.client.sync import Client
from vmexec.zstack.passwords import sha512_hex

__all__ = [
    "Account",
    "ApiError",
    "AsyncClient",
    "Client",
    "ClientError",
    "CommandTimedOut",
    "ConnectionFailed",
    "ExecResult",
    "Host",
    "NotLoggedIn",
    "Session",
    "VmInstance",
    "VmNotFound",
    "sha512_hex",
]
