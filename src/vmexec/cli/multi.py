"""``vmexec exec VM1 'web-*' -q state=Running -- CMD``: one command on many VMs, as a run.

Names, uuids and globs are resolved here against QueryVmInstance (filtered by ``-q`` when
given) and sent as uuids; ``-q`` alone is sent as conditions, resolved by the server. The run
is followed to its end (see :mod:`vmexec.cli.run_view`); Ctrl-C cancels it (its running
targets are cancelled, the rest skipped), a second Ctrl-C detaches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vmexec.cli.interrupts import CtrlC
from vmexec.cli.live import stop_quietly
from vmexec.cli.run_view import RunView, ViewOptions
from vmexec.cli.targets import select
from vmexec.client import AsyncClient, Run, RunFinished
from vmexec.zstack.ids import new_uuid


@dataclass(frozen=True)
class RunEnded:
    run: Run
    cancelled_by_user: bool


async def resolve(client: AsyncClient, refs: Sequence[str],
                  conditions: Sequence[str]) -> list[str] | None:
    """The uuids of the VMs ``refs`` name (among those matching ``conditions``), or None
    when there are no refs (the server resolves ``conditions``). Raises TargetError,
    ClientError."""
    if not refs:
        return None
    vms = await client.query_vms(*conditions)
    return [vm.uuid for vm in select(refs, vms, filtered=bool(conditions))]


async def follow_run(client: AsyncClient, uuid: str, options: ViewOptions | None) -> Run:
    """Follow run ``uuid`` to its end, rendering it unless ``options`` is None; returns the
    run with its targets. Raises ClientError."""
    run = await client.get_run(uuid)
    if options is None:
        async for event in client.follow_run(uuid):
            if isinstance(event, RunFinished):
                break
    else:
        with RunView(run, options) as view:
            async for event in client.follow_run(uuid):
                view.handle(event)
    return await client.get_run(uuid)


async def exec_run(client: AsyncClient, refs: Sequence[str], conditions: Sequence[str],
                   command: str, options: Mapping[str, Any],
                   view: ViewOptions | None) -> RunEnded:
    """Start a run of ``command`` (``options``: start_run's keywords) on the targets and
    follow it. Raises Interrupted, TargetError, ClientError."""
    uuid = new_uuid()
    ctrl_c = CtrlC(lambda: client.cancel_run(uuid), what=f"run {uuid}")

    async def work() -> Run:
        vm_uuids = await resolve(client, refs, conditions)
        ctrl_c.submitting = True
        if vm_uuids is None:
            await client.start_run(command, conditions=list(conditions), uuid=uuid, **options)
        else:
            await client.start_run(command, vm_uuids=vm_uuids, uuid=uuid, **options)
        ctrl_c.submitted.set()
        try:
            return await follow_run(client, uuid, view)
        except BrokenPipeError:
            await stop_quietly(client.cancel_run(uuid))
            raise

    run = await ctrl_c.guard(work())
    return RunEnded(run, ctrl_c.cancelled)
