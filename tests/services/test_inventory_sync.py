"""The inventory kept current from its hosts, over in-memory hosts and a real SQLite database:
lookups, resyncs on a miss, reconciling what a host lists, lifecycle events, hosts that stop
answering. (The libvirt source itself: tests/hypervisor and the -m vm API tests.)"""

from __future__ import annotations

import asyncio

import pytest
from fakes.hosts import MemoryHost, MemoryHosts, seen

from services.conftest import (
    LOCAL,
    A,
    B,
    C,
    OpenInventory,
    host_query,
    the_host,
    until,
    vm_query,
    vms,
)
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import SocketTarget
from vmexec.services.errors import VmNotFound
from vmexec.services.inventory import Inventory

DASHED_A = "AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA"


async def test_first_start_registers_the_local_host_and_discovers_its_vms(
        hosts: MemoryHosts, open_inventory: OpenInventory) -> None:
    hosts.add(LOCAL, seen("web", A, cpu_num=2, memory_size=1 << 30, architecture="x86_64"),
              seen("db", B, state="Stopped", platform="Windows"))
    inventory = await open_inventory()

    host = await the_host(inventory)
    assert (host["name"], host["managementIp"], host["state"], host["status"]) == (
        "localhost", "127.0.0.1", "Enabled", "Connected")
    found = await vms(inventory)
    assert set(found) == {"web", "db"}
    web = found["web"]
    assert (web["uuid"], web["state"], web["platform"], web["cpuNum"], web["memorySize"],
            web["architecture"]) == (A, "Running", "Linux", 2, 1 << 30, "x86_64")
    assert web["hostUuid"] == web["lastHostUuid"] == host["uuid"]
    assert (found["db"]["state"], found["db"]["platform"]) == ("Stopped", "Windows")


async def test_a_local_host_that_does_not_answer_is_not_registered(
        open_inventory: OpenInventory) -> None:
    inventory = await open_inventory()  # nothing at LOCAL
    assert (await inventory.query_hosts(host_query()))["inventories"] == []
    assert (await inventory.query_vms(vm_query()))["inventories"] == []


async def test_lookups_are_served_from_memory(hosts: MemoryHosts,
                                              open_inventory: OpenInventory) -> None:
    local = hosts.add(LOCAL, seen("web", A, socket_path="/run/web.qga"), seen("db", B))
    inventory = await open_inventory()
    listed = local.listings

    ref = await inventory.resolve(DASHED_A)  # any spelling of the UUID
    assert (ref.uuid, ref.name, ref.state, ref.platform, ref.qga_enabled) == (
        A, "web", "Running", "Linux", True)
    assert ref.target == SocketTarget("/run/web.qga")  # where the source says the agent is
    assert (await inventory.inventory(A))["name"] == "web"
    assert await inventory.get_qga(B) is True
    reply = await inventory.query_vms(vm_query("name=db"))
    assert [vm["uuid"] for vm in reply["inventories"]] == [B]
    assert reply["schema"] == {"inventories[0]": "org.zstack.header.vm.VmInstanceInventory"}
    assert await inventory.query_vms(vm_query(count="true")) == {"total": 2, "schema": {}}
    assert local.listings == listed


async def test_a_miss_resyncs_once_and_finds_a_vm_defined_since(
        hosts: MemoryHosts, open_inventory: OpenInventory) -> None:
    local = hosts.add(LOCAL, seen("web", A))
    inventory = await open_inventory()
    listed = local.listings

    local.put(seen("new", B))
    assert (await inventory.resolve(B)).name == "new"
    assert local.listings == listed + 1
    local.put(seen("newer", C))
    assert [vm["uuid"] for vm in (await inventory.query_vms(vm_query("name=newer")))[
        "inventories"]] == [C]
    assert local.listings == listed + 2

    with pytest.raises(VmNotFound) as raised:
        await inventory.resolve("d" * 32)
    assert raised.value.uuid == "d" * 32
    assert local.listings == listed + 3


async def test_a_burst_of_misses_shares_resyncs(hosts: MemoryHosts,
                                                open_inventory: OpenInventory) -> None:
    local = hosts.add(LOCAL)
    inventory = await open_inventory()
    listed = local.listings
    misses = [inventory.resolve(uuid) for uuid in ("d" * 32, "e" * 32, "f" * 32, "9" * 32)]
    results = await asyncio.gather(*misses, return_exceptions=True)
    assert all(isinstance(r, VmNotFound) for r in results)
    # The first miss starts a resync; the others came after it started, so it may not have
    # seen their VMs: they share one more resync, rather than one each.
    assert local.listings == listed + 2


async def test_a_resync_adds_changes_and_removes_vms(
        hosts: MemoryHosts, open_inventory: OpenInventory, agents: AgentDirectory) -> None:
    local = hosts.add(LOCAL, seen("web", A), seen("db", B))
    inventory = await open_inventory()
    before = await vms(inventory)
    agent_of_db = agents.get((await inventory.resolve(B)).target)

    local.put(seen("web-renamed", A, state="Paused", cpu_num=4), seen("cache", C))
    local.remove(B)
    await inventory.sync()

    after = await vms(inventory)
    assert set(after) == {"web-renamed", "cache"}
    web = after["web-renamed"]
    assert (web["uuid"], web["state"], web["cpuNum"]) == (A, "Paused", 4)
    assert web["createDate"] == before["web"]["createDate"]  # first seen: unchanged
    assert after["cache"]["hostUuid"] == web["hostUuid"]
    with pytest.raises(VmNotFound):
        await inventory.inventory(B)
    # The gone VM's agent client was dropped: a new one would be made for it.
    assert agents.get(SocketTarget(f"/nonexistent/{B}")) is not agent_of_db


async def test_a_vm_that_moved_keeps_its_last_host(hosts: MemoryHosts,
                                                   open_inventory: OpenInventory) -> None:
    local = hosts.add(LOCAL, seen("web", A))
    inventory = await open_inventory()
    first = await the_host(inventory)

    # Migrated: it is defined on the destination, then goes from the source.
    other = hosts.add("memory://other", seen("web", A))
    local.remove(A)
    second = await inventory.add_host(name="other", uri="memory://other")
    await inventory.sync()

    web = (await vms(inventory))["web"]
    assert (web["hostUuid"], web["lastHostUuid"]) == (second["uuid"], first["uuid"])

    # And back, this time seen through the destination's lifecycle event.
    local.put(seen("web", A))
    local.fire(A, "STARTED")
    await until(lambda: _host_of(inventory, "web", first["uuid"]))
    other.remove(A)
    await inventory.sync()
    web = (await vms(inventory))["web"]
    assert (web["hostUuid"], web["lastHostUuid"]) == (first["uuid"], second["uuid"])


async def _host_of(inventory: Inventory, name: str, host_uuid: str) -> bool:
    vm = (await vms(inventory)).get(name)
    return vm is not None and vm["hostUuid"] == host_uuid


async def test_lifecycle_events_update_one_vm_without_a_listing(
        hosts: MemoryHosts, open_inventory: OpenInventory) -> None:
    local = hosts.add(LOCAL, seen("web", A), seen("db", B))
    inventory = await open_inventory()
    assert local.live_watchers == 1
    listed = local.listings

    async def state_of(name: str) -> str | None:
        vm = (await vms(inventory)).get(name)
        return None if vm is None else str(vm["state"])

    local.put(seen("web", A, state="Stopped"))
    local.fire(A, "STOPPED")
    await until(lambda: state_of("web"), "Stopped")

    local.put(seen("cache", C))
    local.fire(C, "DEFINED")
    await until(lambda: state_of("cache"), "Running")

    local.remove(B)
    local.fire(B, "UNDEFINED")
    await until(lambda: state_of("db"), None)

    assert local.listings == listed  # each event re-read its VM only


async def test_a_host_that_stops_answering_is_disconnected_and_its_vms_unknown(
        hosts: MemoryHosts, open_inventory: OpenInventory) -> None:
    local = hosts.add(LOCAL, seen("web", A), seen("db", B, state="Stopped"))
    inventory = await open_inventory()

    local.go_down()
    await inventory.sync()
    assert (await the_host(inventory))["status"] == "Disconnected"
    assert {vm["state"] for vm in (await vms(inventory)).values()} == {"Unknown"}
    ref = await inventory.resolve(A)  # still known, in an unknown state
    assert ref.state == "Unknown"
    reply = await inventory.query_hosts(host_query("status=Disconnected"))
    assert [h["libvirtUri"] for h in reply["inventories"]] == [LOCAL]

    local.come_back()
    await inventory.sync()
    assert (await the_host(inventory))["status"] == "Connected"
    assert {name: vm["state"] for name, vm in (await vms(inventory)).items()} == {
        "web": "Running", "db": "Stopped"}


async def test_events_resume_after_the_host_comes_back(
        hosts: MemoryHosts, open_inventory: OpenInventory) -> None:
    local = hosts.add(LOCAL, seen("web", A))
    inventory = await open_inventory(resync_interval=0.05)
    assert local.live_watchers == 1

    local.go_down()
    assert local.live_watchers == 0
    await until(lambda: _status(inventory), "Disconnected")
    local.come_back()
    # The periodic resync reconnects the host and subscribes again.
    await until(lambda: _status(inventory), "Connected")
    await until(lambda: _live(local), 1)

    local.put(seen("web", A, state="Crashed"))
    local.fire(A, "CRASHED")
    await until(lambda: _state(inventory, A), "Crashed")


async def _status(inventory: Inventory) -> str:
    return str((await the_host(inventory))["status"])


async def _live(host: MemoryHost) -> int:
    return int(host.live_watchers)


async def _state(inventory: Inventory, uuid: str) -> str:
    return (await inventory.resolve(uuid)).state


async def test_a_restarted_node_on_sqlite_takes_every_host_back(
        hosts: MemoryHosts, open_inventory: OpenInventory) -> None:
    # SQLite is one node: its share is every host, taken again after a clean stop (which
    # released them), through the claim of free hosts (FOR UPDATE SKIP LOCKED is PostgreSQL's;
    # SQLite runs the same statement without it).
    hosts.add(LOCAL, seen("web", A))
    for n in range(3):
        hosts.add(f"memory://other-{n}")
    first = await open_inventory()
    for n in range(3):
        await first.add_host(name=f"other-{n}", uri=f"memory://other-{n}")
    assert first.owned_host_count() == 4
    await first.aclose()
    again = await open_inventory()
    assert (again.owned_host_count(), again.live_nodes()) == (4, 1)
