"""Following a command's output while it runs (Executor.stream), on real lab VMs: chunks
arrive as the guest writes them, each decodes alone, together they are the result's output,
and a command that ends at once costs no more agent calls than an unfollowed run."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import pytest
from fixtures.engine import sh, target_of

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import AgentTarget, LibvirtTarget
from vmexec.agent.transport.base import DEFAULT_TIMEOUT, AgentTransport
from vmexec.execution.engine import Executor
from vmexec.execution.models import ExecRequest, ExecResult, OutputChunk, StreamName
from vmexec.execution.results import new_run_id
from vmexec.hypervisor.libvirt_host import LibvirtHosts

pytestmark = pytest.mark.vm


async def follow(executor: Executor, vm: AgentTarget, command: str, **kw: Any
                 ) -> tuple[list[tuple[float, OutputChunk]], ExecResult, float]:
    """The chunks of ``command`` with the time each arrived, its result and the time that
    arrived."""
    chunks: list[tuple[float, OutputChunk]] = []
    async for item in executor.stream(vm, ExecRequest(command, **kw)):
        if isinstance(item, ExecResult):
            return chunks, item, time.monotonic()
        chunks.append((time.monotonic(), item))
    raise AssertionError("the stream ended without a result")


def joined(chunks: list[tuple[float, OutputChunk]], stream: StreamName) -> bytes:
    return b"".join(chunk.data for _, chunk in chunks if chunk.stream is stream)


async def test_chunks_arrive_while_the_command_runs(executor: Executor,
                                                    vm: LibvirtTarget) -> None:
    chunks, result, ended = await follow(executor, vm, "echo a; sleep 3; echo b")
    first_at, first = chunks[0]
    assert (first.stream, first.data) == (StreamName.STDOUT, b"a\n")
    b_at = next(at for at, chunk in chunks if b"b" in chunk.data)
    assert first_at < b_at <= ended  # "a" was seen while the command still slept
    assert joined(chunks, StreamName.STDOUT) == result.stdout.data == b"a\nb\n"
    assert result.exit_code == 0


async def test_a_character_split_across_reads_arrives_whole(executor: Executor,
                                                            vm: LibvirtTarget) -> None:
    # U+1F600 is F0 9F 98 80: its first half is in the file for 2 s, across several reads.
    chunks, result, _ = await follow(
        executor, vm, r"printf 'x\360\237'; sleep 2; printf '\230\200y'; sleep 1; echo",
        )
    for _, chunk in chunks:
        chunk.data.decode("utf-8")  # every chunk decodes on its own
    assert [chunk.data for _, chunk in chunks][:2] == [b"x", "\U0001f600y".encode()]
    assert joined(chunks, StreamName.STDOUT) == result.stdout.data == "x\U0001f600y\n".encode()


async def test_chunks_stop_at_the_output_limit(executor: Executor, vm: LibvirtTarget) -> None:
    chunks, result, _ = await follow(
        executor, vm, "seq 1 100; sleep 1; seq 1 100000; sleep 1; seq 5 >&2",
        max_output_bytes=100)
    assert result.stdout.truncated and len(result.stdout.data) == 100
    assert joined(chunks, StreamName.STDOUT) == result.stdout.data
    assert joined(chunks, StreamName.STDERR) == result.stderr.data == b"1\n2\n3\n4\n5\n"


async def test_large_output_followed_is_the_result(executor: Executor,
                                                   vm: LibvirtTarget) -> None:
    # More than one read can take (2 MiB), on both streams, while the command runs.
    chunks, result, _ = await follow(
        executor, vm, "seq 1 500000; sleep 0.5; seq 1 400000 >&2; sleep 0.5; echo end",
        timeout=120)
    expected = "".join(f"{i}\n" for i in range(1, 500001)) + "end\n"
    assert result.stdout.text == expected
    assert joined(chunks, StreamName.STDOUT) == result.stdout.data
    assert joined(chunks, StreamName.STDERR) == result.stderr.data
    assert len(chunks) > 2  # followed, not only handed over at the end


async def agent_handles(executor: Executor, vm: LibvirtTarget, run_id: str) -> str:
    """The guest agent's open files of run ``run_id``."""
    return await sh(executor, vm,
                    f"ls -l /proc/$(pidof qemu-ga)/fd | grep -o '[^/]*{run_id}[^ ]*'; true")


async def test_the_agent_keeps_no_handle_of_a_followed_run(executor: Executor,
                                                           vm: LibvirtTarget) -> None:
    ended = new_run_id()
    async for item in executor.stream(vm, ExecRequest("echo a; sleep 1; echo b >&2"),
                                      run_id=ended):
        if isinstance(item, OutputChunk) and item.data == b"a\n":
            # While it is followed, each output file has its handle in the agent.
            assert (await agent_handles(executor, vm, ended)).split() == [
                f"{ended}.out", f"{ended}.err"]
    assert await agent_handles(executor, vm, ended) == ""

    dropped = new_run_id()
    items = executor.stream(vm, ExecRequest("echo x; sleep 6041", timeout=60), run_id=dropped)
    try:
        async for item in items:
            assert isinstance(item, OutputChunk)
            break
        await items.aclose()  # type: ignore[attr-defined]  # the caller lost interest
        assert await agent_handles(executor, vm, dropped) == ""
    finally:
        assert await executor.cancel(vm, dropped)  # (the command itself ran on until now)


class RecordsCalls(AgentTransport):
    """The real libvirt transport, recording the agent commands of runs (not those of the
    engine's periodic cleanup of run files, whose timing is its own)."""

    def __init__(self, inner: AgentTransport) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[str] = []
        self._cleanups: set[int] = set()

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None, *,
                      timeout: float = DEFAULT_TIMEOUT) -> Any:
        reply = await self.inner.execute(command, arguments, timeout=timeout)
        args = arguments or {}
        if command == "guest-exec" and "vmexec-cleanup" in args.get("arg", []):
            self._cleanups.add(reply["pid"])
        elif command != "guest-exec-status" or args.get("pid") not in self._cleanups:
            self.calls.append(command)
        return reply


class RecordingDirectory(AgentDirectory):
    def _transport(self, target: AgentTarget) -> AgentTransport:
        return RecordsCalls(super()._transport(target))


async def test_a_trivial_command_costs_no_more_followed_than_run(lab_vms) -> None:
    hosts = LibvirtHosts()
    executor = Executor(RecordingDirectory(hosts))
    target = target_of(lab_vms[1])
    transport = executor.agents.get(target).transport
    assert isinstance(transport, RecordsCalls)
    request = ExecRequest("echo hi")
    try:
        await executor.run(target, request)  # the guest's first run: learns its run dir
        run_calls, stream_calls = [], []
        for _ in range(5):  # (the guest's own speed varies: compare the spreads)
            transport.calls.clear()
            assert (await executor.run(target, request)).stdout.data == b"hi\n"
            run_calls.append(list(transport.calls))
            transport.calls.clear()
            items = [item async for item in executor.stream(target, request)]
            assert [i.data for i in items if isinstance(i, OutputChunk)] == [b"hi\n"]
            stream_calls.append(list(transport.calls))
        for calls in stream_calls:
            assert not [c for c in calls if c.startswith("guest-file")], calls
        assert min(map(len, stream_calls)) <= max(map(len, run_calls)), (
            run_calls, stream_calls)
    finally:
        await executor.aclose()
        await executor.agents.aclose()
        hosts.close()
