"""Bare agents: host qemu-ga processes on unix sockets (control-plane load tests only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmexec.agent.client import GuestAgent
from vmexec.agent.transport.unix import UnixSocketTransport
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


async def _sh(sock: str, script: str) -> str:
    agent = GuestAgent(UnixSocketTransport(sock))
    try:
        pid = await agent.exec("/bin/sh", ["-c", script], timeout=10)
        while not (status := await agent.exec_status(pid, timeout=10)).exited:  # noqa: ASYNC110 - the agent has no notification
            await asyncio.sleep(0.01)
        assert status.exit_code == 0, status
        return status.stdout.decode()
    finally:
        await agent.aclose()


@pytest.mark.skipif(os.geteuid() != 0, reason="private run directories need root (unshare)")
async def test_tmpfs_run_dirs_are_each_agents_own() -> None:
    """``run_dir_fs="tmpfs"``: each agent's /var/lib/vmexec is a tmpfs of its own (what a
    fleet bench needs where the host disk makes each file's creation costly), seen from
    the host through the agent's mount namespace; the host's directory stays untouched."""
    async with BareAgents(2, private_run_dir=True, run_dir_fs="tmpfs") as agents:
        for i, sock in enumerate(agents.sockets):
            fs = await _sh(str(sock), f"echo {i} >{LINUX_RUN_DIR}/mine; "
                                      f"stat -f -c %T {LINUX_RUN_DIR}")
            assert fs.strip() == "tmpfs"
        assert [(agents.run_dir(i) / "mine").read_text() for i in range(2)] == ["0\n", "1\n"]
    assert "mine" not in _host_run_dir()


def _host_run_dir() -> list[str]:
    return os.listdir(LINUX_RUN_DIR) if os.path.isdir(LINUX_RUN_DIR) else []


def _cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    # v1: the cpu hierarchy's line ("N:cpu:/path" or "N:cpu,cpuacct:/path"); v2: "0::/path"
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(",") or controllers == "":
            return path
    raise AssertionError(lines)


@pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")
async def test_cpu_weight_puts_the_whole_fleet_in_one_cgroup() -> None:
    """``cpu_weight``: every agent, and every process it starts, in one CPU cgroup of that
    weight (per-process nice cannot keep 2,000 agents' shells from outweighing the client
    under test); the group goes with the agents."""
    async with BareAgents(3, cpu_weight=10) as agents:
        groups = {_cgroup_of(p.pid) for p in agents.processes}
        assert len(groups) == 1 and groups != {"/"}
        group = groups.pop()
        child = await _sh(str(agents.sockets[0]), "cat /proc/self/cgroup")
        assert f":{group}" in child  # what the agent runs is in the group too
        knobs = [Path(root + group) / knob for root, knob in
                 (("/sys/fs/cgroup/cpu", "cpu.shares"), ("/sys/fs/cgroup", "cpu.weight"))]
        weights = [k.read_text().strip() for k in knobs if k.exists()]
        assert weights in (["102"], ["10"])  # v1 shares = weight * 1024 / 100; v2 as given
    assert not any(k.parent.exists() for k in knobs)
