"""Which VMs an account sees (issue 13): one rule, in memory (lookups, queries) and in SQL (for
records that name VMs), kept across resyncs."""

from __future__ import annotations

import pytest
from fakes.hosts import MemoryHosts, seen
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.conftest import LOCAL, A, B, C, OpenInventory, vm_query
from vmexec.db.models_inventory import VmRow
from vmexec.services.errors import VmNotFound
from vmexec.services.inventory import Viewer, vm_visible

ALICE, BOB = "1" * 32, "2" * 32
ADMIN = Viewer(account_uuid="f" * 32, admin=True)


async def test_one_rule_in_memory_and_in_sql(hosts: MemoryHosts, open_inventory: OpenInventory,
                                             db: async_sessionmaker[AsyncSession]) -> None:
    hosts.add(LOCAL, seen("a", A), seen("b", B), seen("c", C))
    inventory = await open_inventory()
    await inventory.change_owner(A, ALICE)
    await inventory.change_owner(B, BOB)
    alice, bob = Viewer(ALICE, admin=False), Viewer(BOB, admin=False)
    nobody = Viewer("3" * 32, admin=False)
    for viewer, expected in ((alice, {A}), (bob, {B}), (nobody, set()), (ADMIN, {A, B, C})):
        reply = await inventory.query_vms(vm_query(), visible_to=viewer)
        assert {vm["uuid"] for vm in reply["inventories"]} == expected
        async with db() as session:
            in_sql = set((await session.scalars(
                select(VmRow.uuid).where(vm_visible(viewer, VmRow.uuid)))).all())
        assert in_sql == expected
        assert inventory.visible_vm_uuids(viewer) == (None if viewer.admin else expected)
    assert (await inventory.resolve(A, visible_to=alice)).name == "a"
    for hidden in (B, C):
        with pytest.raises(VmNotFound):
            await inventory.resolve(hidden, visible_to=alice)
        with pytest.raises(VmNotFound):
            await inventory.get_qga(hidden, visible_to=alice)
    assert (await inventory.resolve(B)).name == "b"  # vmexec's own work sees every VM


async def test_owners_survive_a_resync_and_a_reload(hosts: MemoryHosts,
                                                    open_inventory: OpenInventory) -> None:
    local = hosts.add(LOCAL, seen("a", A))
    inventory = await open_inventory()
    await inventory.change_owner(A, ALICE)
    local.put(seen("a-renamed", A, state="Stopped"))
    await inventory.sync()
    alice = Viewer(ALICE, admin=False)
    assert (await inventory.resolve(A, visible_to=alice)).name == "a-renamed"
    await inventory.aclose()
    reloaded = await open_inventory()
    assert (await reloaded.resolve(A, visible_to=alice)).state == "Stopped"
    await reloaded.disown(ALICE)
    with pytest.raises(VmNotFound):
        await reloaded.resolve(A, visible_to=alice)
