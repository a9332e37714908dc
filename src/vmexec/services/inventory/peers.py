"""Resyncs on a peer's request: a lookup that misses on one node has the owners of the other
hosts resync theirs, so a VM defined a moment ago on a host without lifecycle events (an
agent-socket directory), or before its event arrived, is found on any node as on its owner.

The asking node sends ``pg_notify('vmexec_inventory_resync', REQUEST)`` and waits (at most
:data:`PEER_RESYNC_TIMEOUT`) until every peer holding a host lease answered
``resynced REQUEST NODE`` on the inventory channel, then re-reads the database. Misses in a
burst share one request; an owner coalesces requests into its resyncs. PostgreSQL only (see
:mod:`.listener`): on SQLite the one node owns every host.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from vmexec.services.inventory.store import CHANNEL, RESYNC_CHANNEL, RESYNCED, InventoryStore

log = logging.getLogger(__name__)

#: Seconds a lookup that missed waits for the owners of peers' hosts to resync them.
PEER_RESYNC_TIMEOUT = 5.0


class PeerResyncs:
    """Asks peers to resync, and resyncs for them.

    ``resync_after(moment)`` resyncs this node's hosts (coalesced); ``refresh()`` re-reads the
    database; ``owns_hosts()`` says whether this node holds any host lease now.
    """

    def __init__(self, store: InventoryStore, node_id: str, *,
                 resync_after: Callable[[float], Awaitable[None]],
                 refresh: Callable[[], Awaitable[None]],
                 owns_hosts: Callable[[], bool]) -> None:
        self._store = store
        self._node_id = node_id
        self._resync_after = resync_after
        self._refresh = refresh
        self._owns_hosts = owns_hosts
        self._waiting: dict[str, tuple[set[str], asyncio.Event]] = {}
        self._asking: tuple[float, asyncio.Task[None]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def ask(self, moment: float) -> asyncio.Task[None]:
        """Have the owners resync and re-read after them; a request made after ``moment``
        (``time.monotonic()``) and still running serves the caller too."""
        if self._asking is not None and self._asking[0] >= moment and not self._asking[1].done():
            return self._asking[1]
        task = self._spawn(self._ask_now(), "inventory-ask-peers")
        self._asking = (time.monotonic(), task)
        return task

    async def _ask_now(self) -> None:
        peers = await self._store.peer_owners(self._node_id)
        if not peers:
            return
        request = uuid.uuid4().hex
        answered = asyncio.Event()
        self._waiting[request] = (set(peers), answered)
        try:
            await self._store.notify(RESYNC_CHANNEL, request)
            await asyncio.wait_for(answered.wait(), PEER_RESYNC_TIMEOUT)
        except TimeoutError:
            log.info("peers %s did not resync within %g s; reading what they wrote so far",
                     sorted(self._waiting[request][0]), PEER_RESYNC_TIMEOUT)
        finally:
            self._waiting.pop(request, None)
        await self._refresh()

    def on_request(self, request: str) -> None:
        """A peer missed a lookup: resync the hosts this node owns, then answer."""
        if not self._owns_hosts() or request in self._waiting:
            return  # nothing to resync, or this node's own request
        self._spawn(self._answer(request), "inventory-resync-request")

    async def _answer(self, request: str) -> None:
        try:
            await self._resync_after(time.monotonic())
            await self._store.notify(CHANNEL, f"{RESYNCED} {request} {self._node_id}")
        except asyncio.CancelledError:
            raise
        except Exception:  # the asking peer reads what is there after its timeout
            log.warning("could not resync for a peer's request", exc_info=True)

    def on_answer(self, request: str, node: str) -> None:
        """``node`` resynced for ``request``."""
        waiting = self._waiting.get(request)
        if waiting is None:
            return
        pending, answered = waiting
        pending.discard(node)
        if not pending:
            answered.set()

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
