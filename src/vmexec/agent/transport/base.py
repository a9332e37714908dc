"""The transport contract: one guest-agent command in, one reply out."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

DEFAULT_TIMEOUT = 5.0


class AgentTransport(abc.ABC):
    """Carries one agent command to one VM's agent and brings back its ``return`` value.

    Implementations serialise commands so only one is on the wire per VM at a time, resync the
    stream after a timeout, and raise only :mod:`vmexec.agent.errors` exceptions.
    """

    #: Human-readable identity of the peer, for logs and error messages.
    name: str = "agent"

    @abc.abstractmethod
    async def execute(
        self, command: str, arguments: Mapping[str, Any] | None = None, *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Any:
        """Send ``{"execute": command, "arguments": arguments}`` and return the reply's ``return``.

        Raises:
            AgentUnavailable: the agent cannot be reached (VM stopped, no channel, ...).
            AgentTimeout: no reply within ``timeout`` seconds.
            AgentCommandError: the agent answered with an error.
            AgentProtocolError: the reply was not valid protocol.
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most transports hold nothing
        """Release whatever the transport holds."""
