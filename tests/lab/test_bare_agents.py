"""Bare agents: host qemu-ga processes on unix sockets (control-plane load tests only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator

import pytest

from vmexec.lab.bare_agents import LINUX_RUN_DIR, BareAgents

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


@contextlib.contextmanager
def _host_without_run_dir() -> Iterator[None]:
    """/var/lib/vmexec moved aside (as on a fresh host) and put back after."""
    aside = f"{LINUX_RUN_DIR}.aside-{os.getpid()}"
    if os.path.exists(LINUX_RUN_DIR):
        os.rename(LINUX_RUN_DIR, aside)
    try:
        yield
    finally:
        if os.path.exists(aside):
            os.rmdir(LINUX_RUN_DIR)
            os.rename(aside, LINUX_RUN_DIR)


@pytest.mark.skipif(os.geteuid() != 0, reason="private run directories need root (unshare)")
async def test_private_run_dirs_start_on_a_host_without_the_mount_point() -> None:
    """A fresh host has no /var/lib/vmexec: the agents' mounts need it (bench-scale's first
    run on a new machine died on `mount point does not exist`)."""
    with _host_without_run_dir():
        async with BareAgents(2, private_run_dir=True) as agents:
            replies = await asyncio.gather(*(ping(str(s)) for s in agents.sockets))
            assert replies == [{"return": {}}] * 2
        assert os.listdir(LINUX_RUN_DIR) == []  # a mount point, never written
