"""Errors of the guest-agent layer.

Exception tree::

    AgentError                      anything that went wrong talking to a guest agent
     ├── AgentUnavailable           the agent cannot be reached at all
     │    ├── DomainNotFound        no such VM on the host
     │    ├── DomainNotRunning      the VM is not running (shut off, crashed)
     │    ├── DomainPaused          the VM is paused: its agent answers again once resumed
     │    ├── NoAgentChannel        the VM has no org.qemu.guest_agent.0 channel
     │    ├── AgentNotConnected     the channel exists but no agent is attached to it (the
     │    │                         command was not sent)
     │    └── HostUnreachable       the hypervisor (libvirtd / socket) cannot be reached
     ├── AgentTimeout               the agent did not answer within the timeout
     │    └── AgentBusy             the command waited its whole timeout to be sent: not sent
     ├── AgentProtocolError         the reply could not be understood
     └── AgentCommandError          the agent answered with an error reply
          └── AgentCommandDisabled  the command is disabled (or unknown) in this agent

Transports translate their own exceptions (libvirtError, OSError) into these at their edge;
nothing above the transport sees a foreign exception.  ``asyncio.CancelledError`` is never wrapped.
"""

from __future__ import annotations

from typing import Any


class AgentError(Exception):
    """Root of every guest-agent failure."""

    def __init__(self, message: str, *, command: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.command = command

    def __str__(self) -> str:
        if self.command:
            return f"{self.message} (agent command {self.command!r})"
        return self.message


class AgentUnavailable(AgentError):
    """The agent cannot be reached."""


class DomainNotFound(AgentUnavailable):
    """No VM with that identity exists on the host."""


class DomainNotRunning(AgentUnavailable):
    """The VM exists but is not running, so it has no agent."""


class DomainPaused(AgentUnavailable):
    """The VM is paused (suspended): nothing runs in it until it is resumed."""


class NoAgentChannel(AgentUnavailable):
    """The VM has no guest-agent channel configured."""


class AgentNotConnected(AgentUnavailable):
    """The guest-agent channel exists but nothing in the guest answers on it; the command
    was not sent (a connection lost after sending is :class:`HostUnreachable`)."""


class HostUnreachable(AgentUnavailable):
    """The hypervisor host (libvirtd) or the agent socket cannot be reached."""


class AgentTimeout(AgentError):
    """The agent did not reply within the call's timeout."""


class AgentBusy(AgentTimeout):
    """The command never reached the agent: the commands before it on the same VM took the
    whole timeout (an agent that stopped answering holds up the queue)."""


class AgentProtocolError(AgentError):
    """The agent sent something that is not a valid protocol reply."""


class AgentCommandError(AgentError):
    """The agent replied with ``{"error": {"class": ..., "desc": ...}}``."""

    def __init__(
        self, message: str, *, command: str | None = None, error_class: str = "GenericError",
        reply: Any = None,
    ) -> None:
        super().__init__(message, command=command)
        self.error_class = error_class
        self.reply = reply


class AgentCommandDisabled(AgentCommandError):
    """The command is disabled by the agent's configuration (or not supported by it)."""
