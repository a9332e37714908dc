"""``vmexec history``, ``show``, ``logs`` and ``cancel``: the account's executions and runs.

A uuid given to ``show``, ``logs`` or ``cancel`` may be an execution's or a run's: the
execution is looked up first, then the run.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from vmexec.cli.client_run import (
    EXIT_ERROR,
    Format,
    FormatOpt,
    output_format,
    print_data,
    print_json,
    print_table,
    run,
    run_interruptible,
    write_raw,
)
from vmexec.cli.interrupts import CtrlC, Interrupted, note
from vmexec.cli.live import Ended, exit_status, follow_output, write_chunk
from vmexec.cli.multi import follow_run
from vmexec.cli.run_view import (
    ViewOptions,
    all_succeeded,
    print_summary,
    show_progress,
    summary_counts,
    target_counts,
)
from vmexec.client import (
    ApiError,
    AsyncClient,
    Execution,
    ExecutionEvent,
    OutputEvent,
    Result,
    Run,
    RunEvent,
    TargetFinished,
    TargetOutput,
    TargetStarted,
)
from vmexec.client.client import QueryApi
from vmexec.zstack.errors import Code

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the ZStack JSON reply.")]
Uuid = Annotated[str, typer.Argument(metavar="UUID", help="An execution's or a run's uuid.",
                                     show_default=False)]
#: Executions whose output ``show`` fetches at once, for a run's targets.
SHOW_CONCURRENCY = 8


def _not_found(exc: ApiError) -> bool:
    return exc.status == 404 or exc.code == Code.SYS_RESOURCE_NOT_FOUND


async def _lookup(client: AsyncClient, uuid: str) -> Execution | Run:
    """The execution, else the run, with this uuid. Raises ApiError (not found: one line
    naming both), ClientError."""
    try:
        return await client.get_execution(uuid)
    except ApiError as exc:
        if not _not_found(exc):
            raise
    try:
        return await client.get_run(uuid)
    except ApiError as exc:
        if _not_found(exc):
            raise ApiError(exc.status, exc.code, exc.description,
                           f"no execution or run has the uuid {uuid}") from None
        raise


async def _vm_names(client: AsyncClient, uuids: Sequence[str]) -> dict[str, str]:
    wanted = sorted({u for u in uuids if u})
    if not wanted:
        return {}
    vms = await client.query_vms(f"uuid?={','.join(wanted)}")
    return {vm.uuid: vm.name or vm.uuid for vm in vms}


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.0f} s"


def _short(text: str | None, width: int = 60) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[:width - 1] + "…"


def _execution_status(ex: Execution) -> str:
    if ex.exit_code is not None:
        return str(ex.exit_code)
    if ex.signal is not None:
        return f"signal {ex.signal}"
    return ex.error_code or "-"


# --- history -------------------------------------------------------------------------------------
def history(
    query: Annotated[list[str] | None, typer.Option(
        "-q", "--query", metavar="COND",
        help="ZStack condition, repeatable (AND): state=Failed, vmInstanceUuid=UUID, "
             "command~=%apt%, createDate>2026-12-01")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    runs: Annotated[bool, typer.Option("--runs", help="List runs, not executions.")] = False,
    output: FormatOpt = None,
    json_: JsonOpt = False,
) -> None:
    """List past and running executions (or runs), newest first."""
    conditions = list(query or [])
    fmt = output_format(output, json_)
    api: QueryApi = ("vm-instances/commands/runs" if runs
                     else "vm-instances/commands/executions")

    async def action(client: AsyncClient) -> tuple[dict[str, Any], dict[str, str]]:
        reply = await client.query(api, conditions, limit=limit, sort="-createDate")
        names: dict[str, str] = {}
        if fmt is Format.TABLE and not runs:
            names = await _vm_names(client, [str(inv.get("vmInstanceUuid") or "")
                                             for inv in reply.get("inventories") or []])
        return reply, names

    reply, names = run(action)
    if fmt is not Format.TABLE:
        print_data(reply, fmt)
        return
    inventories = [inv for inv in reply.get("inventories") or [] if isinstance(inv, dict)]
    if runs:
        items = [Run.from_wire(inv) for inv in inventories]
        print_table(["UUID", "STATE", "TARGETS", "CREATED", "COMMAND"], [
            [r.uuid, r.state or "-", summary_counts(r.counts), r.create_date or "-",
             _short(r.command)] for r in items])
        return
    executions = [Execution.from_wire(inv) for inv in inventories]
    print_table(["UUID", "VM", "STATE", "EXIT", "CREATED", "DURATION", "COMMAND"], [
        [e.uuid, names.get(e.vm_instance_uuid or "", e.vm_instance_uuid or "-"),
         e.state or "-", _execution_status(e), e.create_date or "-",
         _duration(e.duration_ms), _short(e.command)] for e in executions])


# --- show ----------------------------------------------------------------------------------------
def _fields(rows: Sequence[tuple[str, object]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        if value not in (None, ""):
            print(f"{name + ':':<{width + 1}} {value}")


def _section(title: str) -> None:
    print(f"--- {title} ---", flush=True)


def _show_execution(ex: Execution, vm_name: str | None) -> None:
    vm = f"{vm_name} ({ex.vm_instance_uuid})" if vm_name else ex.vm_instance_uuid
    _fields([("Execution", ex.uuid), ("VM", vm), ("Run", ex.run_uuid), ("Command", ex.command),
             ("State", ex.state), ("Exit code", ex.exit_code), ("Signal", ex.signal),
             ("Error", f"{ex.error_code}: {ex.error_details or ''}" if ex.error_code else None),
             ("Created", ex.create_date), ("Started", ex.start_date),
             ("Finished", ex.finish_date), ("Duration", _duration(ex.duration_ms)
                                            if ex.duration_ms is not None else None),
             ("Output", f"{ex.stdout_bytes or 0} B stdout"
                        f"{' (truncated)' if ex.stdout_truncated else ''}, "
                        f"{ex.stderr_bytes or 0} B stderr"
                        f"{' (truncated)' if ex.stderr_truncated else ''}")])
    for title, text in (("stdout", ex.stdout), ("stderr", ex.stderr)):
        if text:
            _section(title)
            write_raw(sys.stdout, text if text.endswith("\n") else text + "\n")


def _show_run(r: Run, outputs: dict[str, Execution]) -> None:
    _fields([("Run", r.uuid), ("Command", r.command), ("State", r.state),
             ("Targets", summary_counts(r.counts or target_counts(r.targets))),
             ("Concurrency", r.max_concurrency), ("Max errors", r.max_errors),
             ("Created", r.create_date), ("Started", r.start_date),
             ("Finished", r.finish_date)])
    print()
    print_table(["VM", "STATE", "EXIT", "ERROR", "EXECUTION"], [
        [t.name, t.state or "-", "-" if t.exit_code is None else str(t.exit_code),
         t.error_code or "-", t.execution_uuid or "-"] for t in r.targets])
    for target in r.targets:
        ex = outputs.get(target.execution_uuid or "")
        if ex is None or not (ex.stdout or ex.stderr):
            continue
        for title, text in (("stdout", ex.stdout), ("stderr", ex.stderr)):
            if text:
                _section(f"{target.name} {title}")
                write_raw(sys.stdout, text if text.endswith("\n") else text + "\n")


async def _outputs(client: AsyncClient, r: Run) -> dict[str, Execution]:
    gate = asyncio.Semaphore(SHOW_CONCURRENCY)

    async def one(uuid: str) -> Execution | None:
        async with gate:
            try:
                return await client.get_execution(uuid)
            except ApiError:  # e.g. its output is past retention: the table still shows it
                return None

    found = await asyncio.gather(*(one(t.execution_uuid) for t in r.targets
                                   if t.execution_uuid))
    return {ex.uuid: ex for ex in found if ex is not None}


def show(uuid: Uuid, output: FormatOpt = None, json_: JsonOpt = False) -> None:
    """Show an execution (with its output) or a run (with its targets and their output)."""
    fmt = output_format(output, json_)

    async def action(client: AsyncClient
                     ) -> tuple[Execution | Run, dict[str, str], dict[str, Execution]]:
        item = await _lookup(client, uuid)
        if fmt is not Format.TABLE:
            return item, {}, {}
        if isinstance(item, Execution):
            return item, await _vm_names(client, [item.vm_instance_uuid or ""]), {}
        return item, {}, await _outputs(client, item)

    item, names, outputs = run(action)
    if fmt is not Format.TABLE:
        print_data({"inventory": dict(item.raw)}, fmt)
    elif isinstance(item, Execution):
        _show_execution(item, names.get(item.vm_instance_uuid or ""))
    else:
        _show_run(item, outputs)


# --- logs ----------------------------------------------------------------------------------------
def event_json(event: ExecutionEvent | RunEvent) -> dict[str, Any]:
    """An event as the server sent it, with its type in ``event`` (``logs -f --json``)."""
    if isinstance(event, OutputEvent):
        return {"event": event.stream, "text": event.text, "offset": event.offset}
    if isinstance(event, Result):
        return {"event": "result", "status": event.status, "body": dict(event.body),
                "offset": event.offset}
    if isinstance(event, TargetStarted):
        return {"event": "targetStarted", "vmInstanceUuid": event.vm_instance_uuid,
                "vmInstanceName": event.vm_instance_name,
                "executionUuid": event.execution_uuid}
    if isinstance(event, TargetOutput):
        return {"event": "output", "vmInstanceUuid": event.vm_instance_uuid,
                "executionUuid": event.execution_uuid, "stream": event.stream,
                "text": event.text}
    if isinstance(event, TargetFinished):
        return {"event": "targetFinished", "vmInstanceUuid": event.vm_instance_uuid,
                "executionUuid": event.execution_uuid, "state": event.state,
                "exitCode": event.exit_code, "errorCode": event.error_code}
    return {"event": "runFinished", "inventory": dict(event.run.raw)}


def _print_event(event: ExecutionEvent | RunEvent) -> None:
    print(json.dumps(event_json(event), ensure_ascii=False), flush=True)


async def _follow_json(client: AsyncClient, item: Execution | Run) -> Ended | Run:
    """Print each event of ``item`` as a JSON line, to its end."""
    if isinstance(item, Execution):
        async for event in client.follow(item.uuid):
            _print_event(event)
            if isinstance(event, Result):
                return Ended(item.uuid, event, cancelled_by_user=False)
        raise AssertionError("follow ends with a Result")  # pragma: no cover
    async for run_event in client.follow_run(item.uuid):
        _print_event(run_event)
    return await client.get_run(item.uuid)


def logs(
    uuid: Uuid,
    follow: Annotated[bool, typer.Option(
        "-f", "--follow", help="Follow the output until the command ends (and exit with its "
                               "status, as exec does).")] = False,
    no_prefix: Annotated[bool, typer.Option(
        "--no-prefix", help="A run: no 'name | ' before each line.")] = False,
    json_: Annotated[bool, typer.Option(
        "--json", help="The inventory with the output; with -f, each event as a JSON "
                       "line.")] = False,
) -> None:
    """Print the output of an execution (as the guest wrote it) or of a run (each line after
    its VM's name). Ctrl-C while following stops following; the command goes on."""

    async def action(client: AsyncClient) -> Execution | Run | Ended:
        item = await _lookup(client, uuid)
        if not follow:
            return item
        # Following is watching: Ctrl-C stops it at once and cancels nothing (this CtrlC
        # never submits, so its first press stops the work).
        ctrl_c = CtrlC(_nothing, what="nothing")
        if json_:
            return await ctrl_c.guard(_follow_json(client, item))
        if isinstance(item, Execution):
            result = await ctrl_c.guard(follow_output(client, item.uuid))
            return Ended(item.uuid, result, cancelled_by_user=False)
        view = ViewOptions(prefix=not no_prefix, progress=show_progress())
        return await ctrl_c.guard(follow_run(client, item.uuid, view))

    try:
        got = run(action)
    except Interrupted:
        note(f"stopped following {uuid}; it goes on")
        raise typer.Exit(130) from None
    if isinstance(got, Ended):
        error = got.result.error
        if error is not None and not json_:  # how it ended (timed out, cancelled, ...)
            print(f"error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        raise typer.Exit(exit_status(got))
    if json_ and not follow:
        print_json({"inventory": dict(got.raw)})
        return
    if isinstance(got, Run):
        if follow:
            if not json_:
                print_summary(got)
            raise typer.Exit(0 if all_succeeded(got) else EXIT_ERROR)
        _print_run_logs(got)
        return
    write_chunk(sys.stdout.buffer, got.stdout_data)
    write_chunk(sys.stderr.buffer, got.stderr_data)


async def _nothing() -> None:
    return None


def _print_run_logs(r: Run) -> None:
    async def action(client: AsyncClient) -> dict[str, Execution]:
        return await _outputs(client, r)

    outputs = run(action)
    width = max((len(t.name) for t in r.targets), default=0)
    for target in r.targets:
        ex = outputs.get(target.execution_uuid or "")
        if ex is None:
            continue
        for stream, text in ((sys.stdout, ex.stdout), (sys.stderr, ex.stderr)):
            for line in (text or "").splitlines():
                write_raw(stream, f"{target.name:<{width}} | {line}\n")


# --- cancel --------------------------------------------------------------------------------------
def cancel(uuid: Uuid, json_: JsonOpt = False) -> None:
    """Cancel an execution (its process tree in the guest is stopped) or a run (its running
    targets are cancelled, the rest skipped). Cancelling what has ended changes nothing."""

    async def action(client: AsyncClient) -> Execution | Run:
        item = await _lookup(client, uuid)
        if isinstance(item, Execution):
            return await client.cancel(uuid)
        return await client.cancel_run(uuid)

    item = run_interruptible(action)
    if json_:
        print_json({"inventory": dict(item.raw)})
        return
    kind = "execution" if isinstance(item, Execution) else "run"
    print(f"{kind} {item.uuid}: {item.state}")


def register(app: typer.Typer, panel: str) -> None:
    app.command(rich_help_panel=panel)(history)
    app.command(rich_help_panel=panel)(show)
    app.command(rich_help_panel=panel)(logs)
    app.command(rich_help_panel=panel)(cancel)

