"""Executor fixtures over the lab's real VMs (libvirt + QEMU + qemu-ga)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import LibvirtTarget
from vmexec.execution.engine import Executor
from vmexec.hypervisor.libvirt_host import LibvirtHosts


@pytest.fixture(scope="session")
async def executor() -> AsyncIterator[Executor]:
    hosts = LibvirtHosts()
    executor = Executor(AgentDirectory(hosts))
    yield executor
    await executor.aclose()
    await executor.agents.aclose()
    hosts.close()


def target_of(vm) -> LibvirtTarget:
    return LibvirtTarget(vm.uri, vm.uuid)


@pytest.fixture(scope="session")
def vm(lab_vms) -> LibvirtTarget:
    return target_of(lab_vms[0])
