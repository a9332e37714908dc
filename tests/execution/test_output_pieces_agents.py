"""A result's output is the pieces it was read in, never their join (issue 15): a followed
run's pieces are the very chunks it handed out, so the output is in memory once. Over a bare
agent (a real ``qemu-ga`` on a unix socket on the HOST: the command runs there; a protocol
test, not evidence of anything in a VM)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import SocketTarget
from vmexec.execution.engine import Executor
from vmexec.execution.guestfiles import OUTPUT_READ_CHUNK
from vmexec.execution.models import ExecRequest, ExecResult, OutputChunk, StreamName
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.lab.bare_agents import BareAgents

pytestmark = pytest.mark.agents

LINE = "h\u00e9llo w\u00f6rld \U0001f600\n".encode()
#: More than two reads, cut anywhere (the line's multibyte characters straddle the cuts).
SIZE = 2 * OUTPUT_READ_CHUNK + 12_345


def _printing(size: int, *, followed: bool) -> str:
    """The first ``size`` bytes of LINE repeated: at once, or in three parts 0.5 s apart
    (followed while it runs)."""
    whole = f"yes 'h\u00e9llo w\u00f6rld \U0001f600' | head -c {size}"
    if not followed:
        return whole
    third = size // 3
    return (f"{whole} | head -c {third}; sleep 0.5; {whole} | tail -c +{third + 1} | "
            f"head -c {third}; sleep 0.5; {whole} | tail -c +{2 * third + 1}")


@pytest.fixture
async def executor() -> AsyncIterator[tuple[Executor, SocketTarget]]:
    hosts = LibvirtHosts()
    agents = AgentDirectory(hosts)
    executor = Executor(agents)
    async with BareAgents(1, private_run_dir=True) as bare:
        yield executor, SocketTarget(str(bare.sockets[0]))
        await executor.aclose()
    await agents.aclose()
    hosts.close()


async def _streamed(executor: Executor, target: SocketTarget, command: str
                    ) -> tuple[list[bytes], ExecResult]:
    handed: list[bytes] = []
    result: ExecResult | None = None
    request = ExecRequest(command, timeout=60, max_output_bytes=SIZE)
    async for item in executor.stream(target, request):
        if isinstance(item, OutputChunk):
            assert item.stream is StreamName.STDOUT
            handed.append(item.data)
        else:
            result = item
    assert result is not None
    return handed, result


def _expected(size: int) -> bytes:
    return (LINE * (size // len(LINE) + 1))[:size]


@pytest.mark.parametrize("followed", [False, True], ids=["at-the-end", "followed"])
async def test_the_result_is_the_chunks_handed_out(
        executor: tuple[Executor, SocketTarget], followed: bool) -> None:
    engine, target = executor
    handed, result = await _streamed(engine, target, _printing(SIZE, followed=followed))
    assert result.exit_code == 0 and result.stdout.data == _expected(SIZE)
    pieces = result.stdout.pieces
    # The same objects, not equal copies: nothing was joined or copied for the result.
    assert len(pieces) == len(handed) and all(p is c for p, c in zip(pieces, handed,
                                                                      strict=True))
    if followed:
        assert len(handed) >= 3  # (some were handed out while the command ran)
    # Each piece is at most one read (and a character carried over), and decodes alone.
    assert all(len(p) <= OUTPUT_READ_CHUNK + 3 for p in pieces)
    for piece in pieces[:-1]:
        piece.decode("utf-8")
