"""zstack-cli's habit: ``vmexec <ApiName> key=value ...`` prints the API's ZStack JSON reply.

    vmexec LogInByAccount accountName=admin password=password
    vmexec QueryVmInstance name=vmexec-lab-1          # each other argument is a q= condition
    vmexec ExecuteGuestVmCommand vmInstanceUuid=... platform=Linux command="uname -a"

As zstack-cli does, LogInByAccount hashes the password and keeps the session (in the same file
as ``vmexec login``). Errors are one ``error: CODE: ...`` line, as in the other commands.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from vmexec.cli.client_config import Login
from vmexec.cli.client_run import EXIT_USAGE, current_login, fail, print_json, run, save_login
from vmexec.client import AsyncClient
from vmexec.client.client import QueryApi

PANEL = "ZStack API, zstack-cli style (KEY=VALUE arguments, JSON reply)"
Args = Annotated[list[str] | None, typer.Argument(metavar="KEY=VALUE...", show_default=False)]
#: Arguments that are not parameters: key=value words are parsed here, never as options.
_CONTEXT = {"ignore_unknown_options": True}

#: ExecuteGuestVmCommand's params: ZStack's, then vmexec's extensions; value parsers.
_EXEC_PARAMS: Mapping[str, str] = {
    "vmInstanceUuid": "str", "platform": "str", "command": "str", "commandTimeout": "int",
    "stdin": "str", "env": "json", "workingDirectory": "str", "runAs": "str", "shell": "str",
    "maxOutputBytes": "int", "systemTags": "list", "userTags": "list",
}
_QUERY_OPTIONS = ("limit", "start", "sort", "fields", "count", "replyWithCount")


def _pairs(args: list[str] | None) -> list[tuple[str, str]]:
    pairs = []
    for arg in args or []:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            fail(f"arguments are KEY=VALUE, got {arg!r}", EXIT_USAGE)
        pairs.append((key, value))
    return pairs


def _value(key: str, kind: str, text: str) -> Any:
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            fail(f"{key} must be an integer, got {text!r}", EXIT_USAGE)
    if kind == "list":
        return [item for item in text.split(",") if item]
    if kind == "json":
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            fail(f"{key} must be a JSON object, e.g. {key}='{{\"A\": \"1\"}}'", EXIT_USAGE)
        return value
    return text


def execute_guest_vm_command(args: Args = None) -> None:
    """Run a command in a VM; print the reply (stream, vmInstance, exitCode, stdout, ...)."""
    params: dict[str, Any] = {}
    for key, text in _pairs(args):
        kind = _EXEC_PARAMS.get(key)
        if kind is None:
            fail(f"unknown parameter {key!r}; known: {', '.join(_EXEC_PARAMS)}", EXIT_USAGE)
        params[key] = _value(key, kind, text)
    system_tags, user_tags = params.pop("systemTags", None), params.pop("userTags", None)

    async def action(client: AsyncClient) -> dict[str, Any]:
        return await client.execute(params, system_tags=system_tags, user_tags=user_tags)

    print_json(run(action))


def log_in_by_account(args: Args = None) -> None:
    """Log in (the password is hashed here) and keep the session; print the reply."""
    values = dict(_pairs(args))
    unknown = sorted(set(values) - {"accountName", "password"})
    if unknown or "accountName" not in values or "password" not in values:
        fail("usage: LogInByAccount accountName=NAME password=PASSWORD", EXIT_USAGE)
    current = current_login()

    async def action(client: AsyncClient) -> dict[str, Any]:
        session = await client.login(values["accountName"], values["password"])
        return dict(session.raw)

    inventory = run(action, login=Login(server=current.server))
    save_login(Login(server=current.server, session=str(inventory["uuid"]),
                     account=values["accountName"]))
    print_json({"inventory": inventory})


def log_out(args: Args = None) -> None:
    """End the current session (or sessionUuid=...); print the reply."""
    values = dict(_pairs(args))
    if set(values) - {"sessionUuid"}:
        fail("usage: LogOut [sessionUuid=UUID]", EXIT_USAGE)
    current = current_login()
    session = values.get("sessionUuid") or current.session

    async def action(client: AsyncClient) -> None:
        await client.logout()

    run(action, login=Login(server=current.server, session=session))
    if session == current.session:
        save_login(Login(server=current.server))
    print_json({})


def _query(api: QueryApi, args: list[str] | None) -> None:
    conditions: list[str] = []
    options: dict[str, Any] = {}
    for arg in args or []:
        key, sep, value = arg.partition("=")
        if sep and key in ("limit", "start"):
            options[key] = _value(key, "int", value)
        elif sep and key in _QUERY_OPTIONS:
            options[key] = value
        elif sep and key == "conditions":
            conditions.append(value)
        else:
            conditions.append(arg)  # name=x, state!=Stopped, cpuNum>1, name is null ...

    async def action(client: AsyncClient) -> dict[str, Any]:
        return await client.query(
            api, conditions,
            limit=options.get("limit"), start=options.get("start"),
            sort=options.get("sort"),
            fields=options["fields"].split(",") if options.get("fields") else None,
            count=options.get("count") == "true",
            reply_with_count=options.get("replyWithCount") == "true")

    print_json(run(action))


def query_vm_instance(args: Args = None) -> None:
    """Query VMs; print the reply.

    Each argument is a condition (name=vm1, state!=Stopped, cpuNum>1),
    or one of limit=, start=, sort=, fields=, count=true, replyWithCount=true.
    """
    _query("vm-instances", args)


def query_host(args: Args = None) -> None:
    """Query hosts, as QueryVmInstance."""
    _query("hosts", args)


def register(app: typer.Typer) -> None:
    for name, command in (("ExecuteGuestVmCommand", execute_guest_vm_command),
                          ("LogInByAccount", log_in_by_account), ("LogOut", log_out),
                          ("QueryVmInstance", query_vm_instance), ("QueryHost", query_host)):
        app.command(name, rich_help_panel=PANEL, context_settings=_CONTEXT)(command)
