"""The client commands: ``vmexec login/logout/passwd``, ``vm list``, ``exec``,
``host add/list/delete``, and (from :mod:`vmexec.cli.zstack_cli`) the zstack-cli style
``ExecuteGuestVmCommand ...``.

They talk to a vmexec server over HTTP through :class:`vmexec.client.AsyncClient`.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Any, NoReturn

import typer

from vmexec.cli import copy, history, zstack_cli
from vmexec.cli.client_config import DEFAULT_SERVER, SERVER_ENV, Login
from vmexec.cli.client_run import (
    EXIT_ERROR,
    EXIT_USAGE,
    Format,
    FormatOpt,
    current_login,
    fail,
    fail_client,
    output_format,
    print_data,
    print_json,
    print_table,
    run,
    run_interruptible,
    save_login,
)
from vmexec.cli.interrupts import note
from vmexec.cli.live import (
    CANCELLED,
    EXIT_INTERRUPTED,
    EXIT_TIMED_OUT,
    Ended,
    exec_live,
    exit_status,
)
from vmexec.cli.multi import RunEnded, exec_run
from vmexec.cli.run_view import ViewOptions, all_succeeded, print_summary, show_progress
from vmexec.cli.targets import TargetError, is_run
from vmexec.client import AsyncClient, Host, VmInstance
from vmexec.client.client import stdin_params
from vmexec.zstack.errors import Code
from vmexec.zstack.exec import MAX_STDIN_BYTES, Platform, Shell

vm_app = typer.Typer(help="VM instances the server knows.", no_args_is_help=True)
host_app = typer.Typer(help="Hypervisor hosts the server manages.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the ZStack JSON reply.")]


# --- sessions ------------------------------------------------------------------------------------
def _password(given: str | None) -> str:
    if given is not None:
        return given
    if sys.stdin.isatty():
        return str(typer.prompt("Password", hide_input=True))
    # Scripts pipe the password in (`printf %s "$PW" | vmexec login`), never on a terminal.
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        fail("no password: give --password, $VMEXEC_PASSWORD or one line on stdin", EXIT_USAGE)
    return line


def login(
    server: Annotated[str | None, typer.Option(
        help=f"Server URL [${SERVER_ENV}, else the last one logged in to, else "
             f"{DEFAULT_SERVER}]")] = None,
    user: Annotated[str, typer.Option("--user", "-u", help="Account name.")] = "admin",
    password: Annotated[str | None, typer.Option(
        envvar="VMEXEC_PASSWORD", show_default=False,
        help="Password (prompted for when not given).")] = None,
) -> None:
    """Log in and keep the session in the user's config dir (file mode 0600)."""
    url = server or current_login().server
    secret = _password(password)

    async def action(client: AsyncClient) -> str:
        return (await client.login(user, secret)).uuid

    session = run(action, login=Login(server=url))
    path = save_login(Login(server=url, session=session, account=user))
    print(f"Logged in to {url} as {user}; session saved in {path}")


def _stdin_line(what: str) -> str:
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        fail(f"no {what}: give it as an option or as a line on stdin", EXIT_USAGE)
    return line


def passwd(
    user: Annotated[str | None, typer.Option(
        "--user", "-u", help="Account name [the logged-in one, else admin]",
        show_default=False)] = None,
    old_password: Annotated[str | None, typer.Option(
        envvar="VMEXEC_PASSWORD", show_default=False,
        help="Current password (prompted for when not given).")] = None,
    new_password: Annotated[str | None, typer.Option(
        envvar="VMEXEC_NEW_PASSWORD", show_default=False,
        help="New password (prompted for, twice, when not given).")] = None,
) -> None:
    """Change an account's password (UpdateAccount).

    Every other session of the account ends; this CLI is logged in again with a new session.
    Without a terminal the passwords not given as options are read from stdin, one a line
    (current first).
    """
    current = current_login()
    account = user or current.account or "admin"
    tty = sys.stdin.isatty()
    if old_password is None:
        old_password = (str(typer.prompt("Current password", hide_input=True)) if tty
                        else _stdin_line("current password"))
    if new_password is None:
        new_password = (str(typer.prompt("New password", hide_input=True,
                                         confirmation_prompt=True)) if tty
                        else _stdin_line("new password"))
    if not new_password:
        fail("the new password must not be empty", EXIT_USAGE)
    old, new = old_password, new_password

    async def action(client: AsyncClient) -> str:
        return (await client.change_password(account, old, new)).uuid

    session = run(action, login=Login(server=current.server))
    path = save_login(Login(server=current.server, session=session, account=account))
    print(f"Password of {account} changed on {current.server}; its other sessions ended. "
          f"Logged in again; session saved in {path}")


def logout() -> None:
    """End the session on the server and forget it here."""
    current = current_login(stored_only=True)
    if not current.session:
        print("Not logged in.")
        return

    async def action(client: AsyncClient) -> None:
        await client.logout()

    try:
        run(action, login=current)
    finally:
        # Forgotten even when the server is gone: a stale session is of no use to anyone.
        save_login(Login(server=current.server))
    print(f"Logged out of {current.server}.")


# --- VMs -----------------------------------------------------------------------------------------
def _memory(size: int | None) -> str:
    if size is None:
        return "-"
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:g} {unit}"
    return f"{size} B"


@vm_app.command("list")
def vm_list(
    query: Annotated[list[str] | None, typer.Option(
        "-q", "--query", metavar="COND",
        help="ZStack condition, repeatable (AND): name=vm1, state!=Stopped, name~=web%")] = None,
    output: FormatOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List VMs (QueryVmInstance): uuid, name, state, host, cpu, memory."""
    conditions = list(query or [])
    fmt = output_format(output, json_)

    async def action(client: AsyncClient) -> tuple[dict[str, object], list[Host]]:
        reply = await client.query("vm-instances", conditions)
        hosts = [] if fmt is not Format.TABLE else await client.query_hosts()
        return reply, hosts

    reply, hosts = run(action)
    if fmt is not Format.TABLE:
        print_data(reply, fmt)
        return
    host_names = {h.uuid: h.name or h.uuid for h in hosts}
    inventories = reply.get("inventories")
    vms = [VmInstance.from_wire(i) for i in inventories] if isinstance(inventories, list) else []
    print_table(["UUID", "NAME", "STATE", "HOST", "CPU", "MEMORY"], [
        [vm.uuid, vm.name or "-", vm.state or "-",
         host_names.get(vm.host_uuid or "", vm.host_uuid or "-"),
         str(vm.cpu_num) if vm.cpu_num is not None else "-", _memory(vm.memory_size)]
        for vm in vms])


# --- exec ----------------------------------------------------------------------------------------
def _env(pairs: list[str] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--env takes KEY=VALUE, got {pair!r}", EXIT_USAGE)
        env[key] = value
    return env


def _stdin_data(value: str | None, no_stdin: bool) -> str | bytes | None:
    """The command's stdin: ``--stdin TEXT``; our stdin's bytes with ``--stdin -``, or
    when our stdin is not a terminal (as ssh sends it; ``-n`` not); else none."""
    if value is not None and value != "-":
        return value
    if no_stdin:
        if value == "-":
            fail("--stdin - and -n contradict each other", EXIT_USAGE)
        return None
    if value is None and sys.stdin.isatty():
        return None
    data = sys.stdin.buffer.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        fail(f"stdin has more than {MAX_STDIN_BYTES} bytes, the most a command takes (copy "
             "a file with `vmexec cp`; -n does not send stdin)", EXIT_USAGE)
    # Nothing on a stdin that is not ours to give (/dev/null, a closed pipe): send none,
    # as before; `--stdin -` sends even nothing.
    return data if data or value == "-" else None


_PERCENT_OR_COUNT = re.compile(r"^\d+%?$")


def _count_or_percent(option: str, value: str | None) -> int | str | None:
    if value is None:
        return None
    if not _PERCENT_OR_COUNT.match(value.strip()):
        fail(f"{option} takes a number or a percentage (10 or 10%), got {value!r}", EXIT_USAGE)
    value = value.strip()
    return value if value.endswith("%") else int(value)


def split_targets(args: list[str], argv: list[str]) -> tuple[list[str], list[str]]:
    """``args`` (every positional word) cut into targets and the command's words: the words
    after ``--`` on the command line are the command; without ``--``, the first word is the
    one target (as ever)."""
    if "--" in argv:
        words = len(argv) - argv.index("--") - 1
        if 0 < words <= len(args) and args[len(args) - words:] == argv[len(argv) - words:]:
            return args[:len(args) - words], args[len(args) - words:]
        if words == 0:
            return args, []
    return args[:1], args[1:]


def exec_(
    args: Annotated[list[str], typer.Argument(
        metavar="VM... -- COMMAND", show_default=False,
        help="VMs (uuid, name, or a glob on names: 'web-*'), then -- and the command; its "
             "words are joined with spaces into a script for the guest's shell (as ssh "
             "does).")],
    query: Annotated[list[str] | None, typer.Option(
        "-q", "--query", metavar="COND",
        help="Run on the VMs matching this ZStack condition (repeatable, AND): "
             "state=Running, name~=web-%. With VM arguments, a filter of them.")] = None,
    timeout: Annotated[int | None, typer.Option(
        min=1, help="Seconds before the command is killed (exit 124) [server default: 60]",
        show_default=False)] = None,
    platform: Annotated[Platform, typer.Option(help="Guest OS family.")] = Platform.LINUX,
    shell: Annotated[Shell | None, typer.Option(
        help="Interpreter [bash or sh on Linux, cmd on Windows]", show_default=False)] = None,
    env: Annotated[list[str] | None, typer.Option(
        metavar="KEY=VALUE", help="Environment variable, repeatable.")] = None,
    cwd: Annotated[str | None, typer.Option(help="Working directory in the guest.")] = None,
    user: Annotated[str | None, typer.Option(help="Guest user to run as.")] = None,
    stdin: Annotated[str | None, typer.Option(
        metavar="TEXT|-", help="Text for the command's stdin; '-' reads ours (any bytes). "
                               "Without it, ours is sent when it is not a terminal.")] = None,
    no_stdin: Annotated[bool, typer.Option(
        "-n", "--no-stdin", help="Do not send our stdin (as ssh -n).")] = False,
    parallel: Annotated[str | None, typer.Option(
        metavar="N|N%", help="Several VMs: how many run at once [server default]",
        show_default=False)] = None,
    max_errors: Annotated[str | None, typer.Option(
        metavar="N|N%", help="Several VMs: failed targets tolerated before the rest are "
                             "skipped [server default]", show_default=False)] = None,
    no_prefix: Annotated[bool, typer.Option(
        "--no-prefix", help="Several VMs: no 'name | ' before each line.")] = False,
    group: Annotated[bool, typer.Option(
        "--group", help="Several VMs: each VM's output in one block when it ends.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Run COMMAND in one VM, or in several (a run), and exit with its exit status.

    One VM: the guest's stdout and stderr come out here as it writes them. Exit status: the
    command's, 128+N if killed by signal N, 124 on timeout, 130 when Ctrl-C cancelled it (a
    second Ctrl-C detaches: the command goes on; `vmexec logs UUID -f` follows it).

    Several VMs (or a glob, or -q): each line comes out after its VM's name; a summary at
    the end. Exit status 0 only when the command succeeded on every VM, else 1.
    """
    targets, words = split_targets(list(args), sys.argv[1:])
    conditions = list(query or [])
    if not words:
        fail("no command: give it after --, e.g. vmexec exec VM -- uptime", EXIT_USAGE)
    if not targets and not conditions:
        fail("no VM: name one or more, or select them with -q", EXIT_USAGE)
    script = " ".join(words)
    variables = _env(env)
    data = _stdin_data(stdin, no_stdin)
    if not is_run(targets, conditions):
        if parallel is not None or max_errors is not None:
            fail("--parallel and --max-errors are for several VMs", EXIT_USAGE)
        _exec_one(targets[0], {
            "platform": platform, "command": script,
            **stdin_params(data),
            **{k: v for k, v in {"commandTimeout": timeout,
                                 "env": variables or None, "workingDirectory": cwd,
                                 "runAs": user, "shell": shell}.items() if v is not None}},
            json_)
    options: dict[str, Any] = {
        "platform": platform, "timeout": timeout, "stdin": data, "env": variables or None,
        "working_directory": cwd, "run_as": user, "shell": shell,
        "max_concurrency": _count_or_percent("--parallel", parallel),
        "max_errors": _count_or_percent("--max-errors", max_errors)}
    view = None if json_ else ViewOptions(prefix=not no_prefix, group=group,
                                          progress=show_progress())
    _exec_many(targets, conditions, script, options, view)


def _exec_one(vm: str, params: dict[str, Any], json_: bool) -> NoReturn:
    async def action(client: AsyncClient) -> Ended:
        return await exec_live(client, vm, params, echo=not json_)

    ended = run_interruptible(action)
    error = ended.result.error
    if json_ and (error is None or error.code in _JSON_ERRORS):
        print_json(dict(ended.result.body))
    status = exit_status(ended)
    result = ended.result.exec_result
    if result is not None and (result.exit_code, result.signal, result.timed_out) == (
            None, None, False):
        # Never a silent 1: say that the status is not known rather than make one up.
        fail(f"execution {ended.uuid} ended without an exit status", status)
    if error is None:
        raise typer.Exit(status)
    if status == EXIT_INTERRUPTED:
        note(f"cancelled execution {ended.uuid}")
        raise typer.Exit(status)
    if status == EXIT_TIMED_OUT:
        fail(str(error), status)
    fail_client(error)


#: Errors whose reply --json prints (the others are vmexec's own failures: one error line).
_JSON_ERRORS = frozenset({Code.VM_EXEC_TIMED_OUT, CANCELLED})


def _exec_many(targets: list[str], conditions: list[str], script: str,
               options: dict[str, Any], view: ViewOptions | None) -> NoReturn:
    async def action(client: AsyncClient) -> RunEnded:
        return await exec_run(client, targets, conditions, script, options, view)

    try:
        ended = run_interruptible(action)
    except TargetError as exc:
        fail(str(exc))
    run_ = ended.run
    if view is None:
        print_json({"inventory": dict(run_.raw)})
    else:
        print_summary(run_)
    if ended.cancelled_by_user:
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(0 if all_succeeded(run_) else EXIT_ERROR)


# --- hosts ---------------------------------------------------------------------------------------
def _host_rows(hosts: list[Host]) -> list[list[str]]:
    return [[h.uuid, h.name or "-", h.status or "-", h.state or "-",
             h.libvirt_uri or h.management_ip or "-"] for h in hosts]


_HOST_COLUMNS = ["UUID", "NAME", "STATUS", "STATE", "URI"]


@host_app.command("add")
def host_add(
    ip: Annotated[str | None, typer.Option(
        help="Management IP, reached as qemu+ssh://USER@IP/system with the server's SSH "
             "key.")] = None,
    user: Annotated[str, typer.Option(help="SSH user on the host.")] = "root",
    port: Annotated[int, typer.Option(min=1, max=65535, help="SSH port.")] = 22,
    uri: Annotated[str | None, typer.Option(
        help="Any libvirt URI (qemu+ssh://..., qemu+tcp://...) or unix:///DIR of agent "
             "sockets, instead of --ip.")] = None,
    name: Annotated[str | None, typer.Option(help="Host name [the IP or URI]")] = None,
    json_: JsonOpt = False,
) -> None:
    """Add a KVM host (AddKVMHost); the server must be able to reach it."""
    if not ip and not uri:
        fail("give --ip (with --user) or --uri", EXIT_USAGE)

    async def action(client: AsyncClient) -> Host:
        return await client.add_host(name or ip or uri or "host", management_ip=ip,
                                     username=user if ip and not uri else None,
                                     ssh_port=port if ip and not uri else None,
                                     libvirt_uri=uri)

    host = run(action)
    if json_:
        print_json({"inventory": dict(host.raw)})
    else:
        print_table(_HOST_COLUMNS, _host_rows([host]))


@host_app.command("list")
def host_list(output: FormatOpt = None, json_: JsonOpt = False) -> None:
    """List hosts (QueryHost)."""
    fmt = output_format(output, json_)

    async def action(client: AsyncClient) -> dict[str, object]:
        return await client.query("hosts")

    reply = run(action)
    if fmt is not Format.TABLE:
        print_data(reply, fmt)
        return
    inventories = reply.get("inventories")
    hosts = [Host.from_wire(i) for i in inventories] if isinstance(inventories, list) else []
    print_table(_HOST_COLUMNS, _host_rows(hosts))


@host_app.command("delete")
def host_delete(uuid: Annotated[str, typer.Argument(help="Host uuid.")]) -> None:
    """Forget a host (DeleteHost); its VMs keep running."""
    async def action(client: AsyncClient) -> None:
        await client.delete_host(uuid)

    run(action)
    print(f"Deleted host {uuid}.")


def register(app: typer.Typer) -> None:
    """Add the client commands to the ``vmexec`` app."""
    panel = "Client (talks to a vmexec server)"
    app.command(rich_help_panel=panel)(login)
    app.command(rich_help_panel=panel)(logout)
    app.command(rich_help_panel=panel)(passwd)
    app.command("exec", rich_help_panel=panel)(exec_)
    app.command("cp", rich_help_panel=panel)(copy.cp)
    history.register(app, panel)
    app.add_typer(vm_app, name="vm", rich_help_panel=panel)
    app.add_typer(host_app, name="host", rich_help_panel=panel)
    zstack_cli.register(app)

