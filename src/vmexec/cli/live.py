"""``vmexec exec VM -- CMD`` on one VM: the guest's output as it writes it, the command's status.

The execution is submitted (``Prefer: respond-async``, under a uuid chosen here), then its live
output is followed: each chunk goes out as the guest wrote it (bytes, flushed at once), stdout
to our stdout, stderr to our stderr. The end decides the exit status: the command's (128+N when
killed by signal N), 124 when it timed out, 130 when Ctrl-C cancelled it, 1 (2 for a session
problem) when vmexec could not run it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from vmexec.cli.interrupts import CtrlC
from vmexec.client import AsyncClient, ClientError, OutputEvent, Result
from vmexec.zstack.errors import Code
from vmexec.zstack.ids import new_uuid

#: The execution was cancelled (its reply's opaque has the output so far).
CANCELLED = Code.VM_EXEC_CANCELLED
EXIT_TIMED_OUT = 124
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Ended:
    """How a followed execution ended: its Result, and whether Ctrl-C cancelled it."""

    uuid: str
    result: Result
    cancelled_by_user: bool


def write_chunk(stream: BinaryIO, data: bytes) -> None:
    """Write ``data`` as it is and flush: the user sees it when the guest wrote it."""
    stream.write(data)
    stream.flush()


async def follow_output(client: AsyncClient, uuid: str, *, echo: bool = True,
                        last_event_id: str | None = None) -> Result:
    """Follow execution ``uuid`` to its end, writing its output to our stdout/stderr unless
    not ``echo``. Raises ClientError."""
    async for event in client.follow(uuid, last_event_id=last_event_id):
        if isinstance(event, OutputEvent):
            if echo:
                write_chunk(sys.stdout.buffer if event.stream == "stdout"
                            else sys.stderr.buffer, event.data)
        else:
            return event
    raise AssertionError("follow ends with a Result")  # pragma: no cover


async def exec_live(client: AsyncClient, vm_ref: str, params: Mapping[str, Any], *,
                    echo: bool = True) -> Ended:
    """Run ``params`` (ExecuteGuestVmCommand's, without the VM) on ``vm_ref`` (uuid or
    name), following it under Ctrl-C handling. Raises Interrupted, ClientError."""
    uuid = new_uuid()
    ctrl_c = CtrlC(lambda: client.cancel(uuid), what=f"execution {uuid}")

    async def work() -> Result:
        vm = await client.find_vm(vm_ref)
        ctrl_c.submitting = True
        await client.submit({**params, "vmInstanceUuid": vm.uuid}, uuid=uuid)
        ctrl_c.submitted.set()
        try:
            return await follow_output(client, uuid, echo=echo)
        except BrokenPipeError:
            await stop_quietly(client.cancel(uuid))
            raise

    result = await ctrl_c.guard(work())
    return Ended(uuid, result, ctrl_c.cancelled)


async def stop_quietly(cancel: Awaitable[object]) -> None:
    """Cancel what runs because whoever read our output is gone (``| head``), as a closed
    ssh channel ends the remote command; a failure to cancel changes nothing then."""
    with contextlib.suppress(ClientError):
        await cancel


def is_cancelled(result: Result) -> bool:
    error = result.error
    return error is not None and error.code == CANCELLED


def exit_status(ended: Ended) -> int:
    """The status ``vmexec exec`` exits with: the command's, 124 timed out, 130 cancelled
    (by this Ctrl-C, or by anyone), 1 when vmexec could not run it (the caller reports
    ``result.error`` then)."""
    result = ended.result
    if ended.cancelled_by_user and (is_cancelled(result) or not result.ok):
        return EXIT_INTERRUPTED
    if result.exec_result is not None:
        return result.exec_result.shell_status
    error = result.error
    if error is not None and error.code == Code.VM_EXEC_TIMED_OUT:
        return EXIT_TIMED_OUT
    return EXIT_INTERRUPTED if is_cancelled(result) else 1

