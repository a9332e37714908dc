"""Fixtures for the service tests: a real migrated SQLite database in a temporary directory,
in-memory hosts (tests/fakes/hosts.py) and inventories over them, started and closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from fakes.hosts import MemoryHosts
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from vmexec.agent.directory import AgentDirectory
from vmexec.db.migrate import upgrade
from vmexec.db.session import create_engine, create_sessionmaker
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.services.inventory import Inventory
from vmexec.zstack.inventories import HOST_FIELDS, VM_INSTANCE_FIELDS, kinds
from vmexec.zstack.query import Query, parse_query

#: The URI every inventory of these tests registers as ``localhost`` on a first start.
LOCAL = "memory://local"
#: VM UUIDs.
A, B, C = "a" * 32, "b" * 32, "c" * 32

OpenInventory = Callable[..., Awaitable[Inventory]]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite:///{tmp_path / 'vmexec.db'}")
    await upgrade(engine)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def hosts() -> MemoryHosts:
    return MemoryHosts()


@pytest.fixture
async def agents() -> AsyncIterator[AgentDirectory]:
    libvirt = LibvirtHosts(pool_size=1)  # never used: every target here is a socket
    directory = AgentDirectory(libvirt)
    yield directory
    await directory.aclose()
    libvirt.close()


@pytest.fixture
async def open_inventory(db: async_sessionmaker[AsyncSession], hosts: MemoryHosts,
                         agents: AgentDirectory) -> AsyncIterator[OpenInventory]:
    """``await open_inventory(**options)``: a started inventory over ``hosts`` (the resync
    timer is off unless ``resync_interval`` is given); all are closed after the test."""
    opened: list[Inventory] = []

    async def open_(**options: Any) -> Inventory:
        options.setdefault("resync_interval", 3600)
        options.setdefault("local_host_uri", LOCAL)
        inventory = Inventory(db, hosts, agents, **options)
        await inventory.start()
        opened.append(inventory)
        return inventory

    yield open_
    for inventory in opened:
        await inventory.aclose()


async def until(probe: Callable[[], Awaitable[object]], expected: object = True,
                timeout: float = 10.0) -> None:
    """Wait until ``await probe()`` is ``expected`` (events are handled in tasks of their own,
    and the periodic resync runs when it runs). Raises ``TimeoutError`` after ``timeout``."""
    async with asyncio.timeout(timeout):
        while True:
            if await probe() == expected:
                return
            await asyncio.sleep(0.01)


def vm_query(*conditions: str, **params: str) -> Query:
    return parse_query([*(("q", c) for c in conditions), *params.items()],
                       kinds(VM_INSTANCE_FIELDS))


def host_query(*conditions: str) -> Query:
    return parse_query([("q", c) for c in conditions], kinds(HOST_FIELDS))


async def vms(inventory: Inventory) -> dict[str, dict[str, Any]]:
    """Every VM's inventory by name, without a resync (no conditions: nothing can miss)."""
    reply = await inventory.query_vms(vm_query())
    return {vm["name"]: vm for vm in reply["inventories"]}


async def the_host(inventory: Inventory, uri: str = LOCAL) -> dict[str, Any]:
    [host] = (await inventory.query_hosts(host_query(f"libvirtUri={uri}")))["inventories"]
    return host
