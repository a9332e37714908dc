"""A transport that reports every command's method, error and round trip to an observer
(the server's metrics), around any other transport."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from vmexec.agent.errors import AgentError
from vmexec.agent.transport.base import DEFAULT_TIMEOUT, AgentTransport

#: ``(agent command, error class name or None when answered, seconds)``; must not raise.
CallObserver = Callable[[str, str | None, float], None]


class ObservedTransport(AgentTransport):
    """Delegates to ``inner`` and reports each call once it ended (answered or not).

    A cancelled call (its caller went away) is not reported: it has no outcome.
    """

    def __init__(self, inner: AgentTransport, observe: CallObserver) -> None:
        self.inner = inner
        self.name = inner.name
        self._observe = observe

    async def execute(
        self, command: str, arguments: Mapping[str, Any] | None = None, *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Any:
        started = time.perf_counter()
        try:
            reply = await self.inner.execute(command, arguments, timeout=timeout)
        except AgentError as exc:
            self._observe(command, type(exc).__name__, time.perf_counter() - started)
            raise
        self._observe(command, None, time.perf_counter() - started)
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()
