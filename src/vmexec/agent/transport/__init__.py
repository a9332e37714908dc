"""Transports that carry agent commands: libvirt (local or remote URI) and unix sockets."""

from vmexec.agent.transport.base import AgentTransport

__all__ = ["AgentTransport"]
