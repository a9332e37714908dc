"""LibvirtHosts with a host URI policy: a refused URI is never opened, whoever asks for it
(the inventory, an agent transport), and its calls fail as an unreachable host's do."""

from __future__ import annotations

import stat
from pathlib import Path

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
