"""What every client command shares: running the async client at the command's edge, turning
its errors into one ``error: ...`` line and an exit status, and printing.

Exit statuses of vmexec's own failures: ``2`` usage and authentication (not logged in, wrong
password, expired session), ``1`` everything else (API errors, unreachable server).
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, NoReturn, TextIO, TypeVar

import typer
import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from vmexec.cli.client_config import ConfigError, Login
from vmexec.cli.interrupts import Interrupted
from vmexec.client import ApiError, AsyncClient, ClientError, NotLoggedIn

T = TypeVar("T")

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: 128 + SIGPIPE, as a shell reports a process whose reader closed the pipe.
EXIT_BROKEN_PIPE = 141
#: ZStack's identity errors: wrong name/password, invalid or expired session, ...
_AUTH_CODE_PREFIX = "ID."
ID_INVALID_SESSION = "ID.1001"
_LOGIN_HINT = " (run `vmexec login`)"


def fail(message: str, status: int = EXIT_ERROR) -> NoReturn:
    """Print ``error: <message>`` on stderr, as one line, and exit with ``status``."""
    # One line, always: a server's details may span several.
    print("error: " + " ".join(message.split()), file=sys.stderr, flush=True)
    raise typer.Exit(status)


def fail_client(exc: ClientError) -> NoReturn:
    """Exit for a client error: one line, with the ZStack code when the server sent one."""
    if isinstance(exc, NotLoggedIn):
        fail(f"{exc}{_LOGIN_HINT}", EXIT_USAGE)
    if isinstance(exc, ApiError) and exc.code.startswith(_AUTH_CODE_PREFIX):
        hint = _LOGIN_HINT if exc.code == ID_INVALID_SESSION else ""
        fail(f"{exc}{hint}", EXIT_USAGE)
    fail(str(exc))


def current_login(*, stored_only: bool = False) -> Login:
    """The login to use: the session file's, with the environment's overrides unless
    ``stored_only``. Exits (status 2) when the session file cannot be read."""
    try:
        return Login.stored() if stored_only else Login.current()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def save_login(login: Login) -> Path:
    """Write ``login`` to the session file; exits (status 1) when it cannot be written."""
    try:
        return login.save()
    except ConfigError as exc:
        fail(str(exc))


def run(action: Callable[[AsyncClient], Awaitable[T]], *, login: Login | None = None) -> T:
    """Run ``action`` with a client of the current login (or ``login``), on a new event loop.

    Exits (typer.Exit) on any client error, on a bad session file, and on Ctrl-C.
    """
    current = login or current_login()

    async def main() -> T:
        async with AsyncClient(current.server, session=current.session) as client:
            return await action(client)

    try:
        return asyncio.run(main())
    except ClientError as exc:
        fail_client(exc)
    except KeyboardInterrupt:
        fail("interrupted", EXIT_INTERRUPTED)


def run_interruptible(action: Callable[[AsyncClient], Awaitable[T]], *,
                      login: Login | None = None) -> T:
    """As ``run``, for an action that handles Ctrl-C itself (raising Interrupted): exits
    130, saying "interrupted" unless the action detached (it said what goes on)."""
    try:
        return run(action, login=login)
    except Interrupted as exc:
        if exc.detached:
            raise typer.Exit(EXIT_INTERRUPTED) from None
        fail("interrupted", EXIT_INTERRUPTED)
    except BrokenPipeError:
        # Our reader left (`| head`): exit as a process killed by SIGPIPE, without the
        # interpreter's complaint when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(EXIT_BROKEN_PIPE) from None


def write_raw(stream: TextIO, text: str) -> None:
    """Write ``text`` as it is (no newline added, no re-encoding by the terminal's locale)."""
    if not text:
        return
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that did not come from undecodable bytes
        data = text.encode("utf-8", "replace")
    stream.flush()
    stream.buffer.write(data)
    stream.flush()


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


class Format(enum.StrEnum):
    """How a listing is printed: ``-o table|json|yaml`` (``--json`` is ``-o json``)."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


FormatOpt = Annotated[Format | None, typer.Option(
    "-o", "--output", help="Output format [table; --json is -o json]", show_default=False)]


def output_format(output: Format | None, json_: bool) -> Format:
    return Format.JSON if json_ else output or Format.TABLE


def print_data(data: object, fmt: Format) -> None:
    """``data`` as JSON or YAML (not for Format.TABLE: each command draws its own)."""
    if fmt is Format.YAML:
        print_yaml(data)
    else:
        print_json(data)


def print_yaml(data: object) -> None:
    """``data`` as YAML (block style, keys in the server's order, text as it is)."""
    print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False),
          end="")


def print_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A plain table on stdout; never cut to 80 columns when stdout is a pipe."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*row)
    console = Console(width=None if sys.stdout.isatty() else 1000, highlight=False)
    console.print(table)
