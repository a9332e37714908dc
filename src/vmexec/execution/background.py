"""The engine's work that outlives the call that started it (cleanups, watching orphans)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class BackgroundTasks:
    """Tasks kept referenced until done (the loop holds only weak references), and cancelled
    together when the engine closes."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set by :meth:`close`: no new scheduled work should start after it.
        self.closed = False

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        self.closed = True

    async def cancel(self) -> None:
        """Cancel every task still running and wait until they are gone."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
