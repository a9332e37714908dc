"""A followed run's output files are read at the live pace only while someone reads them
(issue 16: every run target was followed from 0.2 s on whether or not anyone watched, each
read one to three agent calls per stream, so under load, when `echo hi` lasts seconds, a fleet
run paid several times the agent calls it needed). Over a bare agent (a real ``qemu-ga`` on a
unix socket on the HOST: the commands run there; a protocol test, not evidence of anything in a
VM)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import SocketTarget
from vmexec.execution.engine import Executor
from vmexec.execution.models import ExecRequest, ExecResult, OutputChunk
from vmexec.execution.waiting import UNWATCHED_FOLLOW_AFTER
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.lab.bare_agents import BareAgents

pytestmark = pytest.mark.agents


@pytest.fixture
async def engine() -> AsyncIterator[tuple[Executor, SocketTarget, Counter[str]]]:
    """An executor over one bare agent, and a count of its agent calls by command."""
    calls: Counter[str] = Counter()

    def observe(command: str, error: str | None, seconds: float) -> None:
        calls[command] += 1

    hosts = LibvirtHosts()
    agents = AgentDirectory(hosts, observe=observe)
    executor = Executor(agents)
    async with BareAgents(1, private_run_dir=True) as bare:
        yield executor, SocketTarget(str(bare.sockets[0])), calls
        await executor.aclose()
    await agents.aclose()
    hosts.close()


async def _stream(executor: Executor, target: SocketTarget, command: str,
                  watched: Callable[[], bool]) -> tuple[list[tuple[float, bytes]], ExecResult]:
    """The chunks with the seconds from the start they came at, and the result."""
    started = time.monotonic()
    chunks: list[tuple[float, bytes]] = []
    result: ExecResult | None = None
    async for item in executor.stream(target, ExecRequest(command, timeout=60),
                                      watched=watched):
        if isinstance(item, OutputChunk):
            chunks.append((time.monotonic() - started, item.data))
        else:
            result = item
    assert result is not None
    return chunks, result


async def test_output_nobody_watches_is_not_read_while_the_command_runs(
        engine: tuple[Executor, SocketTarget, Counter[str]]) -> None:
    executor, target, calls = engine
    command = f"echo a; sleep {UNWATCHED_FOLLOW_AFTER - 0.8}; echo b"
    chunks, result = await _stream(executor, target, command, watched=lambda: False)
    assert result.exit_code == 0 and result.stdout.data == b"a\nb\n"
    assert b"".join(data for _, data in chunks) == b"a\nb\n"  # handed out at the end
    assert calls["guest-file-seek"] == 0, calls  # no output file was followed
    calls.clear()
    chunks, result = await _stream(executor, target, command, watched=lambda: True)
    assert result.stdout.data == b"a\nb\n"
    assert calls["guest-file-seek"] >= 2, calls  # (watched: followed from 0.2 s on)
    assert chunks[0][1] == b"a\n" and chunks[0][0] < chunks[-1][0] - 0.5


async def test_a_reader_that_comes_mid_run_gets_the_output_at_once(
        engine: tuple[Executor, SocketTarget, Counter[str]]) -> None:
    executor, target, _ = engine
    started = time.monotonic()
    reader_at = 0.5

    def watched() -> bool:
        return time.monotonic() - started >= reader_at

    chunks, result = await _stream(executor, target, "echo a; sleep 3; echo b", watched)
    assert result.stdout.data == b"a\nb\n"
    first_at, first = chunks[0]
    assert first == b"a\n"
    # Read within a status poll's interval of the reader's coming, not at the slow pace's
    # first read (UNWATCHED_FOLLOW_AFTER) nor at the end.
    assert first_at < (reader_at + UNWATCHED_FOLLOW_AFTER) / 2, chunks
