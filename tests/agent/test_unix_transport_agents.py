"""The unix-socket transport against real qemu-ga processes (``qemu-ga -m unix-listen`` on the
host: a protocol test of the agent, not evidence of anything running in a VM)."""

from __future__ import annotations

import asyncio

import pytest

from vmexec.agent.client import GuestAgent
from vmexec.agent.errors import AgentCommandError, AgentNotConnected
from vmexec.agent.transport.unix import UnixSocketTransport

pytestmark = pytest.mark.agents


async def test_exec_round_trip_and_typed_errors(bare_agents) -> None:
    async with bare_agents(1) as agents:
        agent = GuestAgent(UnixSocketTransport(str(agents.sockets[0])))
        info = await agent.info()
        assert info.enabled("guest-exec")
        pid = await agent.exec("/bin/sh", ["-c", "echo out; echo err >&2; exit 4"])
        for _ in range(500):  # polling is the agent protocol's only way to learn of an exit
            if (status := await agent.exec_status(pid)).exited:
                break
            await asyncio.sleep(0.01)
        assert (status.exit_code, status.stdout, status.stderr) == (4, b"out\n", b"err\n")
        with pytest.raises(AgentCommandError):
            await agent.exec_status(pid)  # the exited reply freed the agent's record
        await agent.aclose()


async def test_an_idle_client_lets_others_use_the_one_client_socket(bare_agents) -> None:
    async with bare_agents(1) as agents:
        path = str(agents.sockets[0])
        first = UnixSocketTransport(path, idle_close=1.5)
        await first.execute("guest-ping")
        # qemu-ga serves one client at a time: while `first` holds it, another cannot sync.
        with pytest.raises(AgentNotConnected):
            await UnixSocketTransport(path, sync_timeout=0.5).execute("guest-ping")
        await asyncio.sleep(1.5)
        second = UnixSocketTransport(path)
        assert await second.execute("guest-ping") == {}
        await second.aclose()
        assert await first.execute("guest-ping") == {}  # reconnects when needed again
        await first.aclose()
