"""Changes made by other nodes, heard through PostgreSQL ``LISTEN``.

Every inventory write on PostgreSQL ends with ``pg_notify('vmexec_inventory', '')`` in its
transaction (:func:`.store.announce`); this node keeps one connection of its own listening on
that channel and calls ``on_change`` (which re-reads the inventory) for each burst of
notifications. A lost connection is reopened with a growing pause, and ``on_change`` runs again
then, since notifications sent meanwhile are lost. The periodic resync re-reads the database
too, so a view that missed something is wrong for one resync interval at most.

SQLite has no such channel: a server on SQLite is the only node on its file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from vmexec.services.inventory.store import CHANNEL, RESYNC_CHANNEL, RESYNCED

log = logging.getLogger(__name__)

#: Seconds between attempts to reopen a lost listening connection, at most.
MAX_RECONNECT_PAUSE = 5.0


def listen_dsn(engine: AsyncEngine) -> str | None:
    """The plain DSN asyncpg connects to for ``engine``'s database; ``None`` for SQLite."""
    if engine.url.get_backend_name() != "postgresql":
        return None
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeListener:
    """Runs ``on_change()`` after peers' inventory writes; see the module docstring."""

    def __init__(self, dsn: str, on_change: Callable[[], Awaitable[None]], *,
                 on_resync_request: Callable[[str], None] | None = None,
                 on_resynced: Callable[[str, str], None] | None = None) -> None:
        """``on_resync_request(request)``: a peer missed a lookup and asks the owners to
        resync; ``on_resynced(request, node)``: ``node`` answered ``request``."""
        self._dsn = dsn
        self._on_change = on_change
        self._on_resync_request = on_resync_request
        self._on_resynced = on_resynced
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Open the listening connection (raises what asyncpg raises when it cannot), then
        keep it open and apply changes in the background."""
        connection = await self._connect()
        self._tasks = [
            asyncio.create_task(self._keep_listening(connection), name="inventory-listen"),
            asyncio.create_task(self._apply_changes(), name="inventory-changes")]

    async def aclose(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _connect(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(self._dsn)
        self._lost.clear()
        connection.add_termination_listener(lambda _conn: self._lost.set())
        await connection.add_listener(CHANNEL, self._notified)
        await connection.add_listener(RESYNC_CHANNEL, self._asked)
        return connection

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.startswith(RESYNCED):
            _word, request, node = [*payload.split(" ", 2), "", ""][:3]
            if self._on_resynced is not None:
                self._on_resynced(request, node)
            return
        # A burst of notifications (a resync writing many VMs) becomes one re-read.
        self._wake.set()

    def _asked(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._on_resync_request is not None:
            self._on_resync_request(payload)

    async def _keep_listening(self, connection: asyncpg.Connection) -> None:
        try:
            while True:
                await self._lost.wait()
                log.warning("lost the inventory change channel; reopening it")
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)
                connection = await self._reconnect()
                self._wake.set()  # what was announced meanwhile is lost: re-read everything
        finally:
            with contextlib.suppress(Exception):
                await connection.close(timeout=1)

    async def _reconnect(self) -> asyncpg.Connection:
        pause = 0.1
        while True:
            try:
                return await self._connect()
            except (OSError, asyncpg.PostgresError) as exc:
                log.info("cannot reopen the inventory change channel yet: %s", exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_RECONNECT_PAUSE)

    async def _apply_changes(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._on_change()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: the next notification or resync retries
                log.exception("re-reading the inventory after a peer's change failed")
