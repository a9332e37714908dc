"""The real host sources without a VM: the URI → source choice, an agent-socket directory of
real listening sockets, and the libvirt source over libvirt's own in-process test driver
(``test:///default``: a real libvirt connection whose one domain, ``test``, is simulated).
The libvirt source on real guests: the -m vm tests of tests/api and tests/hypervisor."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import libvirt
import pytest

from vmexec.agent.targets import LibvirtTarget, SocketTarget
from vmexec.hypervisor.domains import DomainState
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.hypervisor.sockets import socket_vm_uuid
from vmexec.services.errors import InvalidValue
from vmexec.services.inventory import HostSources
from vmexec.services.inventory.libvirt_source import ZSTACK_STATE, LibvirtSource
from vmexec.services.inventory.records import VmRecord
from vmexec.services.inventory.socket_source import SocketDirSource
from vmexec.services.inventory.source import NoSuchVm, SourceError
from vmexec.zstack.inventories import VmState

TEST_DRIVER = "test:///default"
#: The test driver's one domain.
TEST_DOMAIN = "6695eb01f6a4830479aa97f2502e193f"


@pytest.fixture
def libvirt_hosts() -> Iterator[LibvirtHosts]:
    hosts = LibvirtHosts(pool_size=2)
    yield hosts
    hosts.close()


def record(uuid: str, socket_path: str | None = None) -> VmRecord:
    now = datetime.now(UTC)
    return VmRecord(uuid=uuid, host_uuid="h" * 32, name="vm", state="Running",
                    platform="Linux", cpu_num=1, memory_size=0, has_agent_channel=True,
                    qga_enabled=True, create_date=now, last_op_date=now,
                    socket_path=socket_path)


@pytest.mark.parametrize(("uri", "fragment"), [
    ("not a uri", "not a libvirt URI"),
    ("unix://relative/dir", "absolute path"),
])
def test_a_malformed_uri_is_an_invalid_value(libvirt_hosts: LibvirtHosts, uri: str,
                                             fragment: str) -> None:
    with pytest.raises(InvalidValue, match=fragment):
        HostSources(libvirt_hosts)(uri)


def test_the_uri_chooses_the_source(libvirt_hosts: LibvirtHosts) -> None:
    sources = HostSources(libvirt_hosts)
    assert isinstance(sources("unix:///run/qemu-server"), SocketDirSource)
    assert sources("unix:///run/qemu-server").kind == "socketdir"
    assert isinstance(sources("qemu+ssh://root@10.0.0.5/system"), LibvirtSource)
    assert sources("qemu:///system").kind == "libvirt"


def test_every_domain_state_has_a_zstack_state() -> None:
    assert set(ZSTACK_STATE) == set(DomainState)
    assert ZSTACK_STATE[DomainState.BLOCKED] is VmState.RUNNING
    assert ZSTACK_STATE[DomainState.PMSUSPENDED] is VmState.PAUSED
    assert ZSTACK_STATE[DomainState.SHUTDOWN] is VmState.STOPPING


# --- agent-socket directories ----------------------------------------------------------------

@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Outside tmp_path: unix socket paths are limited to 107 bytes.
    base = Path(tempfile.mkdtemp(prefix="vmx-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


async def test_a_socket_directory_lists_its_agent_sockets(socket_dir: Path) -> None:
    listening = []
    for name in ("101.qga", "102.sock"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(socket_dir / name))
        s.listen()
        listening.append(s)
    (socket_dir / "103.qga").write_text("a leftover file, not a running VM")
    try:
        source = SocketDirSource(f"unix://{socket_dir}")
        await source.probe()
        seen = await source.list_vms()
        path = str(socket_dir / "101.qga")
        assert [(vm.name, vm.state, vm.socket_path) for vm in seen] == [
            ("101", "Running", path), ("102", "Running", str(socket_dir / "102.sock"))]
        uuid = socket_vm_uuid(path)
        assert seen[0].uuid == uuid
        assert (await source.vm(uuid)).name == "101"
        with pytest.raises(NoSuchVm):
            await source.vm("0" * 32)
        assert source.agent_target(record(uuid, path)) == SocketTarget(path)
        watcher = await source.watch(lambda _uuid, _what: None)
        assert watcher.alive  # no events: never needs restarting
        await watcher.aclose()
    finally:
        for s in listening:
            s.close()


async def test_a_missing_socket_directory_does_not_answer(socket_dir: Path) -> None:
    source = SocketDirSource(f"unix://{socket_dir}/gone")
    with pytest.raises(SourceError, match="cannot read agent-socket directory"):
        await source.probe()
    with pytest.raises(SourceError):
        await source.list_vms()


# --- libvirt, through its test driver --------------------------------------------------------

@pytest.fixture
async def test_driver(libvirt_hosts: LibvirtHosts) -> AsyncIterator[LibvirtSource]:
    source = LibvirtSource(libvirt_hosts.get(TEST_DRIVER))
    yield source
    await source.aclose()


async def test_the_libvirt_source_reads_domains_as_vms(test_driver: LibvirtSource) -> None:
    await test_driver.probe()
    [vm] = await test_driver.list_vms()
    assert (vm.uuid, vm.name, vm.state) == (TEST_DOMAIN, "test", VmState.RUNNING)
    assert vm.cpu_num >= 1 and vm.memory_size > 0
    assert (await test_driver.vm(TEST_DOMAIN)).name == "test"
    with pytest.raises(NoSuchVm):
        await test_driver.vm("0" * 32)
    assert test_driver.agent_target(record(TEST_DOMAIN)) == LibvirtTarget(
        TEST_DRIVER, "6695eb01-f6a4-8304-79aa-97f2502e193f")


async def test_the_libvirt_source_delivers_lifecycle_events(test_driver: LibvirtSource) -> None:
    events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    watcher = await test_driver.watch(lambda uuid, what: events.put_nowait((uuid, what)))
    try:
        assert watcher.alive
        conn = await asyncio.to_thread(libvirt.open, TEST_DRIVER)
        try:
            domain = conn.lookupByUUIDString(TEST_DOMAIN)
            await asyncio.to_thread(domain.suspend)
            assert await asyncio.wait_for(events.get(), 10) == (TEST_DOMAIN, "SUSPENDED")
            assert (await test_driver.vm(TEST_DOMAIN)).state == VmState.PAUSED
            await asyncio.to_thread(domain.resume)
            assert await asyncio.wait_for(events.get(), 10) == (TEST_DOMAIN, "RESUMED")
        finally:
            conn.close()
    finally:
        await watcher.aclose()
    assert not watcher.alive


async def test_an_unreachable_libvirt_is_a_source_error(libvirt_hosts: LibvirtHosts) -> None:
    # Nothing listens on port 1 of the loopback: the connection is refused at once.
    source = LibvirtSource(libvirt_hosts.get("qemu+tcp://127.0.0.1:1/system"))
    with pytest.raises(SourceError, match="cannot connect to libvirt"):
        await source.probe()
    with pytest.raises(SourceError):
        await source.list_vms()
    with pytest.raises(SourceError):
        await source.watch(lambda _uuid, _what: None)
