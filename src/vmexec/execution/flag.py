""":class:`Flag`: :class:`asyncio.Event`'s interface at a fraction of its memory.

An ``asyncio.Event`` holds a deque of waiters from the moment it exists: about 0.7 KiB, most of
it the deque's first block, whether anybody ever waits or not. A run in flight keeps several
such signals (its start settled, its wake-up between polls, its output changed), and a fleet
run keeps thousands of runs in flight: a flag holds its waiters' futures only while they wait.
"""

from __future__ import annotations

import asyncio


class Flag:
    """Set, cleared and awaited as an :class:`asyncio.Event` (same semantics: :meth:`set`
    wakes every waiter; :meth:`wait` returns at once while the flag is set)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        """Until the flag is set (at once if it is). Returns True, as Event.wait does."""
        if self._set:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = [waiter]
        else:
            self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            # Cancelled (a timeout around the wait): forget it. Woken: set() let go of it.
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
