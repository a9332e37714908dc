"""A command's large output is held once by the server, from the agent's reads to the reply
written (issue 15: 8 MiB of output cost the server 11 times that, then 4 to 5 times).

Counted with tracemalloc over a bare agent (a real ``qemu-ga`` on a unix socket on the HOST:
the command runs there; a protocol and cost test, not evidence of anything in a VM): the peak
of the Python allocations while the server (in-process, in its thread) runs the command and
writes its reply, which the client reads in pieces and does not keep. The bound is one copy of
the output and a few agent reads in flight; any second copy of the output (the chunks' join,
its text, the JSON of the reply) goes past it. Bytes are counted, never time. The server's RSS
(libvirt's buffers, the allocator) is measured by the bench (bench/large_output.py).
"""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator

import httpx
import pytest
from fixtures.server import RunningServer, ServerFactory

from api.test_exec import EXEC
from vmexec.execution.guestfiles import OUTPUT_READ_CHUNK
from vmexec.lab.bare_agents import BareAgents

pytestmark = pytest.mark.agents

MIB = 1024 * 1024
#: Output of each command: large beside the reads in flight, within the agent's cap.
SIZE = 12 * MIB
#: What a read costs while in flight over the unix transport (the reply's line in the
#: stream's buffer, as bytes, as text and its JSON string, and the bytes it decodes to): at
#: most 5 times the piece, plus room for the rest of a request (1 MiB).
IN_FLIGHT = 5 * OUTPUT_READ_CHUNK + MIB


def _printing(size: int, *, followed: bool) -> str:
    """A command printing ``size`` bytes of 'a': at once (read when it has ended), or half,
    a pause, then the rest (followed while it runs: read in pieces handed out as chunks)."""
    half = f"head -c {size // 2} /dev/zero | tr '\\0' a"
    return f"{half}; sleep 1; {half}" if followed else f"head -c {size} /dev/zero | tr '\\0' a"


@pytest.fixture(scope="module")
def agent_vm(module_server_factory: ServerFactory) -> Iterator[tuple[RunningServer, str]]:
    """A server whose one host is one bare agent; yields it and the agent's VM uuid."""
    loop = asyncio.new_event_loop()
    agents = loop.run_until_complete(BareAgents(1, private_run_dir=True).__aenter__())
    try:
        server = module_server_factory()
        with server.client() as client:
            reply = client.post("/zstack/v1/hosts/kvm", json={"params": {
                "name": "agent", "managementIp": "127.0.0.1",
                "libvirtUri": f"unix://{agents.sockets[0].parent}"}})
            assert reply.status_code == 200, reply.text
            host = reply.json()["inventory"]["uuid"]
            reply = client.get("/zstack/v1/vm-instances", params={"q": f"hostUuid={host}"})
            [vm] = reply.json()["inventories"]
        yield server, vm["uuid"]
    finally:
        loop.run_until_complete(agents.aclose())
        loop.close()


def _exec_streamed(client: httpx.Client, vm: str, command: str) -> tuple[int, int]:
    """Run ``command``; the reply's status and how many 'a' its body has, read in pieces."""
    count = 0
    body = {"params": {"vmInstanceUuid": vm, "platform": "Linux", "command": command,
                       "maxOutputBytes": SIZE, "commandTimeout": 120}}
    with client.stream("PUT", EXEC, json=body) as reply:
        for piece in reply.iter_bytes(64 * 1024):
            count += piece.count(b"a")
    return reply.status_code, count


@pytest.mark.parametrize("followed", [False, True], ids=["at-the-end", "followed"])
def test_the_server_holds_a_large_output_once(agent_vm: tuple[RunningServer, str],
                                              followed: bool) -> None:
    server, vm = agent_vm
    with server.client(timeout=300) as client:
        assert _exec_streamed(client, vm, "echo warm")[0] == 200  # connections, caches
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            status, count = _exec_streamed(client, vm, _printing(SIZE, followed=followed))
            peak = tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()
    # The whole output came back, twice: as ``stdout`` and in ZStack's ``stream``.
    assert status == 200 and 2 * SIZE <= count < 2 * SIZE + 100
    assert peak <= SIZE + IN_FLIGHT, (
        f"the server's Python allocations peaked at {peak / MIB:.1f} MiB for "
        f"{SIZE / MIB:.0f} MiB of output: more than one copy of it")
