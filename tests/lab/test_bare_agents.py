"""Bare agents: host qemu-ga processes on unix sockets (control-plane load tests only)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from vmexec.lab.bare_agents import BareAgents

pytestmark = pytest.mark.agents


async def ping(sock: str) -> dict[str, object]:
    reader, writer = await asyncio.open_unix_connection(sock)
    try:
        writer.write(json.dumps({"execute": "guest-ping"}).encode() + b"\n")
        await writer.drain()
        reply: dict[str, object] = json.loads(await asyncio.wait_for(reader.readline(), 5))
        return reply
    finally:
        writer.close()
        await writer.wait_closed()


async def test_each_agent_answers_on_its_own_socket(bare_agents: type[BareAgents]) -> None:
    async with bare_agents(5) as agents:
        assert len(set(agents.sockets)) == 5
        replies = await asyncio.gather(*(ping(str(s)) for s in agents.sockets))
        assert replies == [{"return": {}}] * 5
        pids = [p.pid for p in agents.processes]
        base = agents.sockets[0].parent
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not base.exists()


async def test_a_failing_agent_is_reported_and_cleaned_up() -> None:
    with pytest.raises(OSError):
        async with BareAgents(2, qemu_ga="/nonexistent/qemu-ga"):
            pass
