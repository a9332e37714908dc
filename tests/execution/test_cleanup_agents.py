"""What a run costs the guest besides its command, counted over a bare agent (a real
``qemu-ga`` on a unix socket on the HOST, with a ``/var/lib/vmexec`` of its own: a protocol
and cost test, not evidence of anything running in a VM): the helper processes the engine
starts — cleanups, watchdogs — are counted as the agent's ``guest-exec`` calls."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vmexec.agent.client import exec_request_size
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.protocol import SAFE_REQUEST_BYTES
from vmexec.agent.targets import SocketTarget
from vmexec.execution.cleanup import CLEANUP_DELAY, CLEANUP_INTERVAL, REMOVE_BATCH
from vmexec.execution.engine import Executor
from vmexec.execution.linux.platform import RUN_DIRS, LinuxPlatform
from vmexec.execution.models import ExecRequest
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.lab.bare_agents import BareAgents

pytestmark = pytest.mark.agents


class Counted:
    """An engine whose agent calls are counted by agent command."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.hosts = LibvirtHosts()
        self.agents = AgentDirectory(self.hosts, observe=self._observe)
        self.executor = Executor(self.agents)

    def _observe(self, command: str, error: str | None, seconds: float) -> None:
        self.calls[command] += 1

    async def aclose(self) -> None:
        await self.executor.aclose()
        await self.agents.aclose()
        self.hosts.close()


@pytest.fixture
async def agent() -> AsyncIterator[tuple[SocketTarget, Path]]:
    async with BareAgents(1, private_run_dir=True) as agents:
        yield SocketTarget(str(agents.sockets[0])), agents.run_dir(0)


@pytest.fixture
async def counted() -> AsyncIterator[Counted]:
    engine = Counted()
    yield engine
    await engine.aclose()


def _names(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir())


async def _until_empty(run_dir: Path, seconds: float) -> list[str]:
    """The agent's run files once there are none, or what is left after ``seconds``."""
    for _ in range(int(seconds * 10)):
        if not (left := _names(run_dir)):
            return []
        await asyncio.sleep(0.1)
    return left


async def test_a_busy_guest_gets_one_cleanup_per_interval_not_one_per_run(
        agent: tuple[SocketTarget, Path], counted: Counted) -> None:
    """Runs ending 3 s apart: with one cleanup CLEANUP_DELAY after each run (before), a guest
    paid a cleanup process per run however long its batch waited."""
    target, run_dir = agent
    for _ in range(4):
        result = await counted.executor.run(target, ExecRequest("sleep 3; echo done"))
        assert result.exit_code == 0 and result.stdout.data == b"done\n"
    assert await _until_empty(run_dir, CLEANUP_INTERVAL + CLEANUP_DELAY + 10) == []
    # 4 runs; cleanups: the first run's alone, then the three others together.
    assert counted.calls["guest-exec"] == 4 + 2


async def test_a_run_past_two_seconds_gets_no_watchdog_before_a_tenth_of_its_timeout(
        agent: tuple[SocketTarget, Path], counted: Counted) -> None:
    target, run_dir = agent
    result = await counted.executor.run(target, ExecRequest("sleep 3", timeout=60))
    assert result.exit_code == 0
    assert await _until_empty(run_dir, CLEANUP_DELAY + 10) == []
    assert counted.calls["guest-exec"] == 1 + 1  # the run and its cleanup


def test_a_batch_of_ended_runs_fits_one_agent_request() -> None:
    longest = max(RUN_DIRS, key=len)
    launch = LinuxPlatform().remove(longest, [f"{i:032x}" for i in range(REMOVE_BATCH)])
    assert exec_request_size(launch.path, launch.args) <= SAFE_REQUEST_BYTES
