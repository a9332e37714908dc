"""One :class:`GuestAgent` per target, created on first use and shared by all callers."""

from __future__ import annotations

from vmexec.agent.client import GuestAgent
from vmexec.agent.targets import AgentTarget, LibvirtTarget
from vmexec.agent.transport.base import AgentTransport
from vmexec.agent.transport.libvirt import LibvirtTransport
from vmexec.agent.transport.observed import CallObserver, ObservedTransport
from vmexec.agent.transport.unix import UnixSocketTransport
from vmexec.hypervisor.domains import dashed
from vmexec.hypervisor.libvirt_host import LibvirtHosts


class AgentDirectory:
    """Keeps the agent client (and so its transport and per-VM state) of every target.

    With ``observe``, every agent command is reported to it (method, error, round trip).
    """

    def __init__(self, hosts: LibvirtHosts, *, observe: CallObserver | None = None) -> None:
        self.hosts = hosts
        self._observe = observe
        self._agents: dict[AgentTarget, GuestAgent] = {}

    def get(self, target: AgentTarget) -> GuestAgent:
        if isinstance(target, LibvirtTarget):
            # One client per domain whatever UUID spelling the caller used.
            target = LibvirtTarget(target.uri, dashed(target.domain_uuid))
        agent = self._agents.get(target)
        if agent is None:
            agent = self._agents[target] = GuestAgent(self._transport(target))
        return agent

    def _transport(self, target: AgentTarget) -> AgentTransport:
        transport: AgentTransport
        if isinstance(target, LibvirtTarget):
            transport = LibvirtTransport(self.hosts.get(target.uri), target.domain_uuid)
        else:
            transport = UnixSocketTransport(target.path)
        return transport if self._observe is None else ObservedTransport(transport,
                                                                         self._observe)

    async def forget(self, target: AgentTarget) -> None:
        """Drop a target's client (its VM was removed)."""
        agent = self._agents.pop(target, None)
        if agent is not None:
            await agent.aclose()

    async def aclose(self) -> None:
        agents, self._agents = list(self._agents.values()), {}
        for agent in agents:
            await agent.aclose()
