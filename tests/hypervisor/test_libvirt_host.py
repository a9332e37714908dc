"""LibvirtHosts with a host URI policy: a refused URI is never opened, whoever asks for it
(the inventory, an agent transport), and its calls fail as an unreachable host's do."""

from __future__ import annotations

import asyncio
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from vmexec.hypervisor import errors
from vmexec.hypervisor.libvirt_host import LibvirtHosts, RefusedHost
from vmexec.hypervisor.uris import HostUriPolicy


async def test_a_refused_uri_is_never_opened(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    program = tmp_path / "program.sh"
    program.write_text(f"#!/bin/sh\ntouch {marker}\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    hosts = LibvirtHosts(policy=HostUriPolicy())
    try:
        host = hosts.get(f"qemu+ext:///system?command={program}")
        assert isinstance(host, RefusedHost)
        with pytest.raises(errors.HostUnreachable, match="qemu\\+ext:// is not supported"):
            await host.call(lambda conn: conn.getLibVersion(), "probing")
        assert not marker.exists()
        assert not isinstance(hosts.get("qemu:///system"), RefusedHost)
    finally:
        hosts.close()


def test_without_a_policy_every_uri_is_a_host() -> None:
    hosts = LibvirtHosts()
    try:
        assert not isinstance(hosts.get("qemu+ext:///system?command=/bin/true"), RefusedHost)
    finally:
        hosts.close()


async def test_an_idle_connection_is_closed_and_reopened_by_the_next_call() -> None:
    # Issue 12: a node connects to hosts it does not own only to run commands; those
    # connections (SSH sessions for qemu+ssh) close once unused. Needs the lab's libvirtd.
    hosts = LibvirtHosts(pool_size=2)
    try:
        host = hosts.get("qemu:///system")
        version = await host.call(lambda conn: conn.getLibVersion(), "probing")
        assert hosts.connections() == 1
        assert await hosts.close_idle(3600) == 0  # used a moment ago
        assert await hosts.close_idle(0) == 1
        assert hosts.connections() == 0
        assert await host.call(lambda conn: conn.getLibVersion(), "probing") == version
        assert hosts.connections() == 1
    finally:
        hosts.close()


async def test_a_connection_in_use_is_not_closed() -> None:
    hosts = LibvirtHosts(pool_size=2)
    started, release = threading.Event(), threading.Event()

    def slow_call(conn: Any) -> int:
        started.set()
        release.wait(30)
        return int(conn.getLibVersion())

    try:
        host = hosts.get("qemu:///system")
        call = asyncio.ensure_future(host.call(slow_call, "a long call"))
        await asyncio.to_thread(started.wait, 30)
        assert await hosts.close_idle(0) == 0
        release.set()
        assert await call > 0
        assert await hosts.close_idle(0) == 1
    finally:
        release.set()
        hosts.close()
