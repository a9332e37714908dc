"""Cancelling a run (Executor.cancel) on real lab VMs: its whole process tree goes, the run
ends CANCELLED with its output so far, also when vmexec restarted in between; a cancel is
idempotent and one of several concurrent ones wins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from fixtures.engine import new_executor, sh

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.errors import AgentBusy
from vmexec.agent.targets import AgentTarget, LibvirtTarget
from vmexec.agent.transport.base import DEFAULT_TIMEOUT, AgentTransport
from vmexec.execution.engine import Executor
from vmexec.execution.models import ExecRequest, ExecResult, Outcome, OutputChunk, StreamName
from vmexec.execution.results import new_run_id
from vmexec.hypervisor.libvirt_host import LibvirtHosts

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
    """Processes of run ``run_id`` in the guest: its first one (the run's file prefix is on
    its command line) and every one with its marker in the environment."""
    return await sh(executor, vm, f"""
grep -l 'VMEXEC_RUN_ID={run_id}' /proc/[0-9]*/environ 2>/dev/null
ps -o pid,args | grep '/{run_id}' | grep -v grep
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
    assert "sleep 6014" in await leftovers(executor, vm, run_id)  # the first process
    assert len((await leftovers(executor, vm, run_id)).splitlines()) >= 5  # and the tree
    assert await executor.cancel(vm, run_id)
    more, result = await rest(items)
    assert result.outcome is Outcome.CANCELLED and result.cancelled
    assert result.stdout.data == b"started\n" and more == b""
    assert result.exit_code is not None  # (as the guest saw it: TERM, turned into an exit)
    assert await leftovers(executor, vm, run_id) == ""
    assert not await executor.cancel(vm, run_id)  # ended: nothing to do


@pytest.mark.parametrize("request_", [
    ExecRequest("echo started; sleep 6061 & sleep 6062; wait", run_as="vmuser", timeout=120),
    ExecRequest("#!/usr/bin/env python3\nimport subprocess, time\nprint('started', flush=True)"
                "\nsubprocess.Popen(['sleep', '6063'])\ntime.sleep(6064)\n", timeout=120),
], ids=["run-as", "shebang"])
async def test_cancel_kills_a_supervised_run(executor: Executor, vm: LibvirtTarget,
                                             request_: ExecRequest) -> None:
    # The supervised form: a sh supervisor runs the script as its child (as another user, or
    # by its #! line).
    run_id = new_run_id()
    items = executor.stream(vm, request_, run_id=run_id)
    await started(items)
    await asyncio.sleep(0.5)
    assert len((await leftovers(executor, vm, run_id)).splitlines()) >= 3
    assert await executor.cancel(vm, run_id)
    _, result = await rest(items)
    assert result.cancelled and result.stdout.data == b"started\n"
    assert await leftovers(executor, vm, run_id) == ""


async def test_concurrent_cancels_one_wins(executor: Executor, vm: LibvirtTarget) -> None:
    run_id = new_run_id()
    task = asyncio.create_task(executor.run(vm, ExecRequest("sleep 6021", timeout=120),
                                            run_id=run_id))
    await asyncio.sleep(1)
    won = await asyncio.gather(*(executor.cancel(vm, run_id) for _ in range(4)))
    assert sorted(won) == [False, False, False, True]
    result = await task
    assert result.cancelled
    assert await leftovers(executor, vm, run_id) == ""


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


class SlowStart(AgentTransport):
    """The real libvirt transport, except that the guest-exec of a command (the run's, not
    a helper's) takes ``HOLD`` seconds, once: sent at once and its reply held back, or
    (``lost``) failed without being sent, as when another command holds the agent."""

    HOLD = 1.5

    def __init__(self, inner: AgentTransport, *, lost: bool) -> None:
        self.inner = inner
        self.name = inner.name
        self.lost = lost
        self.holding = asyncio.Event()
        self.done = False

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None, *,
                      timeout: float = DEFAULT_TIMEOUT) -> Any:
        if command != "guest-exec" or (arguments or {}).get("path") != "bash" or self.done:
            return await self.inner.execute(command, arguments, timeout=timeout)
        self.done = True
        self.holding.set()
        if self.lost:
            await asyncio.sleep(self.HOLD)
            raise AgentBusy("another command holds the agent", command=command)
        reply = await self.inner.execute(command, arguments, timeout=timeout)
        await asyncio.sleep(self.HOLD)
        return reply


@contextlib.asynccontextmanager
async def slow_start(vm: LibvirtTarget, *, lost: bool
                     ) -> AsyncIterator[tuple[Executor, SlowStart]]:
    class Directory(AgentDirectory):
        def _transport(self, target: AgentTarget) -> AgentTransport:
            return SlowStart(super()._transport(target), lost=lost)

    hosts = LibvirtHosts()
    executor = Executor(Directory(hosts))
    try:
        transport = executor.agents.get(vm).transport
        assert isinstance(transport, SlowStart)
        yield executor, transport
    finally:
        await executor.aclose()
        await executor.agents.aclose()
        hosts.close()


async def test_cancel_while_the_start_is_on_its_way(vm: LibvirtTarget) -> None:
    # The guest-exec reached the agent, its reply has not come back: the cancel waits for
    # it, then kills what it started.
    run_id = new_run_id()
    async with slow_start(vm, lost=False) as (executor, transport):
        task = asyncio.create_task(executor.run(
            vm, ExecRequest("echo started; sleep 6031; echo finished", timeout=60),
            run_id=run_id))
        await transport.holding.wait()
        assert await executor.cancel(vm, run_id)
        result = await task
        assert result.cancelled and result.stdout.data == b"started\n"
        assert await leftovers(executor, vm, run_id) == ""


async def test_cancel_while_a_start_that_did_not_go_out_waits(vm: LibvirtTarget) -> None:
    # The guest-exec failed without reaching the agent (it was busy): the start would send it
    # again, but the cancel came first: the command never runs.
    run_id = new_run_id()
    async with slow_start(vm, lost=True) as (executor, transport):
        task = asyncio.create_task(executor.run(
            vm, ExecRequest(f"echo ran > /tmp/{run_id}", timeout=60), run_id=run_id))
        await transport.holding.wait()
        assert await executor.cancel(vm, run_id)
        result = await task
        assert result.cancelled and result.exit_code is None
        await asyncio.sleep(1)
        assert await sh(executor, vm, f"ls /tmp/{run_id} 2>/dev/null; true") == ""


@pytest.fixture(autouse=True)
async def no_stray_sleeps(executor: Executor, vm: LibvirtTarget) -> AsyncIterator[None]:
    """Whatever a failing test left in the guest goes (the VM is shared; it has no pkill)."""
    yield
    with contextlib.suppress(Exception):
        await sh(executor, vm, "ps -o pid,args | grep -E 'sleep 60[0-9][0-9]' | grep -v grep "
                               "| awk '{print $1}' | xargs -r kill -9; true")
