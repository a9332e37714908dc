"""One :class:`GuestAgent` per target, created on first use and shared by all callers."""

from __future__ import annotations

from vmexec.agent.client import GuestAgent
from vmexec.agent.targets import AgentTarget
from vmexec.hypervisor.libvirt_host import LibvirtHosts


class AgentDirectory:
    def __init__(self, hosts: LibvirtHosts) -> None:
        self.hosts = hosts
        self._agents: dict[AgentTarget, GuestAgent] = {}

    def get(self, target: AgentTarget) -> GuestAgent:
        raise NotImplementedError

    async def aclose(self) -> None:
        for agent in self._agents.values():
            await agent.aclose()
        self._agents.clear()
