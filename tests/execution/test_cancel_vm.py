"""Cancelling a run (Executor.cancel) on real lab VMs: its whole process tree goes, the run
ends CANCELLED with its output so far, also when vmexec restarted in between; a cancel is
idempotent and one of several concurrent ones wins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from fixtures.engine import new_executor, sh

from vmexec.agent.targets import LibvirtTarget
from vmexec.execution.engine import Executor
from vmexec.execution.models import ExecRequest, ExecResult, Outcome, OutputChunk, StreamName
from vmexec.execution.results import new_run_id

pytestmark = pytest.mark.vm

#: A process tree: children in the background, one in a session of its own, one that ignores
#: TERM; each sleep has a length of its own, so it is found in the guest's process list.
TREE = """echo started
sleep 6011 &
(setsid sleep 6012 &)
sh -c 'trap "" TERM; sleep 6013' &
sleep 6014
wait
"""


async def leftovers(executor: Executor, vm: LibvirtTarget, run_id: str) -> str:
    """Processes in the guest that belong to run ``run_id`` (its marker in their environment,
    or one of TREE's sleeps), and the run's files that say it ended."""
    return await sh(executor, vm, f"""
grep -l 'VMEXEC_RUN_ID={run_id}' /proc/[0-9]*/environ 2>/dev/null
ps -o pid,args | grep 'sleep 601[1-4]' | grep -v grep
true""")


async def started(items: AsyncIterator[OutputChunk | ExecResult]) -> None:
    """Wait until the run printed 'started' (so its process tree is being built)."""
    async for item in items:
        assert isinstance(item, OutputChunk), item
        if b"started" in item.data:
            return


async def rest(items: AsyncIterator[OutputChunk | ExecResult]) -> tuple[bytes, ExecResult]:
    """The stdout chunks still to come and the result."""
    out = b""
    async for item in items:
        if isinstance(item, ExecResult):
            return out, item
        if item.stream is StreamName.STDOUT:
            out += item.data
    raise AssertionError("no result")


async def test_cancel_kills_the_whole_process_tree(executor: Executor,
                                                   vm: LibvirtTarget) -> None:
    run_id = new_run_id()
    items = executor.stream(vm, ExecRequest(TREE, timeout=120), run_id=run_id)
    await started(items)
    await asyncio.sleep(0.5)  # the tree is complete
    assert "sleep 6014" in await leftovers(executor, vm, run_id)
    assert await executor.cancel(vm, run_id)
    more, result = await rest(items)
    assert result.outcome is Outcome.CANCELLED and result.cancelled
    assert result.stdout.data == b"started\n" and more == b""
    assert result.exit_code is not None  # (as the guest saw it: TERM, turned into an exit)
    assert await leftovers(executor, vm, run_id) == ""
    assert not await executor.cancel(vm, run_id)  # ended: nothing to do


async def test_concurrent_cancels_one_wins(executor: Executor, vm: LibvirtTarget) -> None:
    run_id = new_run_id()
    task = asyncio.create_task(executor.run(vm, ExecRequest("sleep 6021", timeout=120),
                                            run_id=run_id))
    await asyncio.sleep(1)
    won = await asyncio.gather(*(executor.cancel(vm, run_id) for _ in range(4)))
    assert sorted(won) == [False, False, False, True]
    result = await task
    assert result.cancelled
    assert "sleep 6021" not in await sh(executor, vm, "ps -o args")


async def test_cancel_before_the_start_means_it_never_runs(executor: Executor,
                                                           vm: LibvirtTarget) -> None:
    run_id = new_run_id()
    items = executor.stream(vm, ExecRequest("echo ran > /tmp/vmexec-cancelled-early"),
                            run_id=run_id)
    assert await executor.cancel(vm, run_id)
    assert not await executor.cancel(vm, run_id)
    got = [item async for item in items]
    assert len(got) == 1 and isinstance(got[0], ExecResult)
    assert got[0].cancelled and got[0].exit_code is None and got[0].stdout.data == b""
    assert await sh(executor, vm, f"""
ls /var/lib/vmexec /run/vmexec /tmp/vmexec 2>/dev/null | grep {run_id}
ls /tmp/vmexec-cancelled-early 2>/dev/null; true""") == ""
    assert not await executor.cancel(vm, run_id)  # no trace of it: nothing to do


async def test_cancel_of_an_ended_run_changes_nothing(executor: Executor,
                                                      vm: LibvirtTarget) -> None:
    result = await executor.run(vm, ExecRequest("echo done; exit 3"))
    assert (result.outcome, result.exit_code) == (Outcome.EXITED, 3)
    # Its files are still in the guest (deleted a couple of seconds after the end).
    assert not await executor.cancel(vm, result.run_id)
    marks = await sh(executor, vm, f"ls /var/lib/vmexec | grep {result.run_id}; true")
    assert f"{result.run_id}.rc" in marks and "cancelled" not in marks


async def test_cancel_after_a_restart_and_recover_says_cancelled(vm: LibvirtTarget) -> None:
    run_id = new_run_id()
    async with new_executor() as first:
        items = first.stream(vm, ExecRequest(TREE, timeout=120), run_id=run_id)
        await started(items)
        await asyncio.sleep(0.5)
        await items.aclose()  # type: ignore[attr-defined]  # vmexec "dies", the run goes on
        # (the kill the cancel uses is not the deadline's: the watchdog is far away)
        assert "sleep 6014" in await leftovers(first, vm, run_id)

    async with new_executor() as second:  # a new vmexec, knowing only the run id
        won = await asyncio.gather(second.cancel(vm, run_id), second.cancel(vm, run_id))
        assert sorted(won) == [False, True]
        assert await leftovers(second, vm, run_id) == ""
        result = await second.recover(vm, run_id, timeout=30)
        assert result.outcome is Outcome.CANCELLED
        assert result.stdout.data == b"started\n"
        assert not await second.cancel(vm, run_id)


async def test_cancel_stops_a_run_being_recovered(vm: LibvirtTarget) -> None:
    run_id = new_run_id()
    async with new_executor() as first:
        items = first.stream(vm, ExecRequest(TREE, timeout=120), run_id=run_id)
        await started(items)
        await items.aclose()  # type: ignore[attr-defined]

    async with new_executor() as second:
        recovering = asyncio.create_task(second.recover(vm, run_id, timeout=60))
        await asyncio.sleep(1)
        assert not recovering.done()
        assert await second.cancel(vm, run_id)
        result = await recovering
        assert result.cancelled and result.stdout.data == b"started\n"
        assert await leftovers(second, vm, run_id) == ""


@pytest.fixture(autouse=True)
async def no_stray_sleeps(executor: Executor, vm: LibvirtTarget) -> AsyncIterator[None]:
    """Whatever a failing test left in the guest goes (the VM is shared)."""
    yield
    with contextlib.suppress(Exception):
        await sh(executor, vm, "pkill -KILL -f 'sleep 60[12][0-9]'; true")
