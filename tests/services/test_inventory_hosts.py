"""Host administration, the agent switch kept in the database, and the live agent probe, over
in-memory hosts and a real SQLite database."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.hosts import MemoryHosts, seen
from fakes.windows_agent import FakeWindowsAgent, Outcome

from services.conftest import LOCAL, A, B, C, OpenInventory, host_query, the_host, vm_query, vms
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import SocketTarget
from vmexec.services.errors import HostExists, HostUnreachable, VmNotFound

OTHER = "memory://other"


async def test_add_host_discovers_its_vms_and_watches_it(
        hosts: MemoryHosts, open_inventory: OpenInventory) -> None:
    hosts.add(LOCAL, seen("web", A))
    inventory = await open_inventory()
    other = hosts.add(OTHER, seen("db", B))

    host = await inventory.add_host(
        name="other", uri=OTHER, management_ip="10.0.0.5", username="root", ssh_port=22,
        cluster_uuid="c" * 32, description="rack 2", host_uuid="F" * 32)
    assert host["uuid"] == "f" * 32
    assert (host["name"], host["libvirtUri"], host["managementIp"], host["username"],
            host["sshPort"], host["clusterUuid"], host["description"], host["status"]) == (
        "other", OTHER, "10.0.0.5", "root", 22, "c" * 32, "rack 2", "Connected")
    assert await the_host(inventory, OTHER) == host
    db = (await vms(inventory))["db"]
    assert (db["hostUuid"], db["clusterUuid"]) == ("f" * 32, "c" * 32)
    assert other.live_watchers == 1


async def test_add_host_refuses_a_uri_or_uuid_taken_and_a_host_that_does_not_answer(
        hosts: MemoryHosts, open_inventory: OpenInventory) -> None:
    hosts.add(LOCAL, seen("web", A))
    inventory = await open_inventory()
    local = await the_host(inventory)
    hosts.add(OTHER)

    with pytest.raises(HostExists, match="URI memory://local is already added"):
        await inventory.add_host(name="again", uri=LOCAL)
    with pytest.raises(HostExists, match=f"UUID {local['uuid'].upper()} exists"):
        await inventory.add_host(name="same uuid", uri=OTHER, host_uuid=local["uuid"].upper())
    with pytest.raises(HostUnreachable,
                       match=r"cannot connect to host memory://nowhere: .* does not answer"):
        await inventory.add_host(name="nowhere", uri="memory://nowhere")

    reply = await inventory.query_hosts(host_query())
    assert [h["libvirtUri"] for h in reply["inventories"]] == [LOCAL]
    assert all(source.closed for source in hosts.sources_of("memory://nowhere"))


async def test_delete_host_forgets_it_and_its_vms(
        hosts: MemoryHosts, open_inventory: OpenInventory, agents: AgentDirectory) -> None:
    hosts.add(LOCAL, seen("web", A))
    inventory = await open_inventory()
    other = hosts.add(OTHER, seen("db", B), seen("cache", C))
    host = await inventory.add_host(name="other", uri=OTHER)
    agent_of_db = agents.get((await inventory.resolve(B)).target)

    await inventory.delete_host(host["uuid"].upper())
    assert [h["libvirtUri"] for h in (await inventory.query_hosts(host_query()))[
        "inventories"]] == [LOCAL]
    assert set(await vms(inventory)) == {"web"}
    assert other.live_watchers == 0
    assert all(source.closed for source in hosts.sources_of(OTHER))
    # The gone VMs' agent clients were dropped: a new one would be made.
    assert agents.get(SocketTarget(f"/nonexistent/{B}")) is not agent_of_db

    # Its VMs stay gone: nothing reads the host any more.
    listed = other.listings
    await inventory.sync()
    with pytest.raises(VmNotFound):
        await inventory.resolve(B)
    assert other.listings == listed
    # Deleting again (or any unknown host) succeeds, as ZStack's deletes do.
    await inventory.delete_host(host["uuid"])


async def test_set_qga_is_kept_across_a_reload_and_resyncs(
        hosts: MemoryHosts, open_inventory: OpenInventory) -> None:
    local = hosts.add(LOCAL, seen("web", A), seen("db", B))
    first = await open_inventory()
    await first.set_qga(A, False)
    assert await first.get_qga(A) is False
    await first.aclose()

    local.put(seen("web", A, state="Paused"))  # changed while the server was down
    second = await open_inventory()
    assert await second.get_qga(A) is False
    assert await second.get_qga(B) is True
    ref = await second.resolve(A)
    assert (ref.qga_enabled, ref.state) == (False, "Paused")
    # A resync rewrites what the host reports, never the switch.
    local.put(seen("web", A, state="Running"))
    await second.sync()
    assert await second.get_qga(A) is False
    await second.set_qga(A, True)
    assert (await second.resolve(A)).qga_enabled is True

    with pytest.raises(VmNotFound):
        await second.set_qga(C, False)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Outside tmp_path: unix socket paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="vmx-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_guest_tools_info_asks_the_live_agent(
        hosts: MemoryHosts, open_inventory: OpenInventory, short_dir: Path) -> None:
    socket = short_dir / "web.qga"
    hosts.add(LOCAL, seen("web", A, socket_path=str(socket)),
              seen("off", B, state="Stopped", socket_path=str(socket)),
              seen("no-channel", C, has_agent_channel=False, socket_path=str(socket)))
    inventory = await open_inventory()

    async with FakeWindowsAgent(socket=socket, run=lambda _run: Outcome()):
        assert await inventory.guest_tools_info(A) == {
            "status": "Running", "version": "108.0.2 (fake Windows)",
            # It lists guest-exec but not guest-exec-status, and no guest-file-* commands.
            "features": {"guestExec": False, "guestFileTransfer": False}}
        for uuid in (B, C):
            assert await inventory.guest_tools_info(uuid) == {
                "status": "Not Connected", "features": {}}
    with pytest.raises(VmNotFound):
        await inventory.guest_tools_info("d" * 32)
    assert (await inventory.query_vms(vm_query("name=web")))["inventories"][0]["uuid"] == A
