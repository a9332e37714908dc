"""Agent on a unix socket: a QEMU chardev (plain QEMU, Proxmox) or ``qemu-ga -m unix-listen``."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Mapping
from typing import Any

from vmexec.agent import protocol
from vmexec.agent.errors import (
    AgentBusy,
    AgentNotConnected,
    AgentProtocolError,
    AgentTimeout,
    HostUnreachable,
)
from vmexec.agent.transport.base import DEFAULT_TIMEOUT, AgentTransport

log = logging.getLogger(__name__)

#: An agent socket serves one client at a time (QEMU chardev, qemu-ga unix-listen): let go of
#: it after this many idle seconds so others (e.g. Proxmox's own `qm agent`) can use it too.
IDLE_CLOSE = 10.0
#: Replies can carry up to 2 x 16 MiB of base64 output; allow for that in one line.
MAX_REPLY_BYTES = 64 * 1024 * 1024
_ids = itertools.count(random.randrange(1, 1 << 30))


class UnixSocketTransport(AgentTransport):
    """One connection, one command on the wire at a time, resynced after any failure."""

    def __init__(self, path: str, *, sync_timeout: float = 3.0,
                 idle_close: float = IDLE_CLOSE) -> None:
        self.path = path
        self._idle_close = idle_close
        self._idle: asyncio.TimerHandle | None = None
        self._last_used = 0.0
        self.name = f"unix:{path}"
        self._sync_timeout = sync_timeout
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._log = log.getChild(path.rsplit("/", 1)[-1])

    async def execute(
        self, command: str, arguments: Mapping[str, Any] | None = None, *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Any:
        if self._lock.locked():
            try:
                # A frozen agent makes every queued command wait its full timeout: one that
                # cannot get its turn in its own timeout fails unsent rather than wait for all.
                async with asyncio.timeout(timeout):
                    await self._lock.acquire()
            except TimeoutError:
                raise AgentBusy(
                    f"not sent: the agent's earlier commands did not finish within "
                    f"{timeout:g} s", command=command) from None
        else:
            await self._lock.acquire()  # free: no timer for a wait that cannot happen
        try:
            reader, writer = await self._ensure_synced()
            payload = protocol.encode_command(command, arguments)
            self._log.debug("--> %s", payload[:200])
            try:
                # (A timeout scope, not wait_for: no task per call.)
                async with asyncio.timeout(timeout):
                    line = await self._roundtrip(reader, writer, payload)
            except TimeoutError:
                # A late reply may still come: drop the connection so the next call starts
                # from a clean, resynced stream.
                await self._drop()
                raise AgentTimeout(f"agent did not answer within {timeout:g} s",
                                   command=command) from None
            except (OSError, asyncio.IncompleteReadError) as exc:
                await self._drop()
                # Maybe after the agent read the command: not "not connected" (never sent).
                raise HostUnreachable(f"agent connection lost mid-command: {exc}",
                                      command=command) from None
            self._log.debug("<-- %s", line[:200])
            self._arm_idle_close()
            return protocol.decode_reply(line, command)
        finally:
            self._lock.release()

    def _arm_idle_close(self) -> None:
        # One timer per idle period, not one per call: it looks at when the last call ended.
        loop = asyncio.get_running_loop()
        self._last_used = loop.time()
        if self._idle is None:
            self._idle = loop.call_later(self._idle_close, self._close_idle)

    def _close_idle(self) -> None:
        self._idle = None
        if self._writer is None:
            return
        loop = asyncio.get_running_loop()
        idle_for = loop.time() - self._last_used
        if self._lock.locked() or idle_for < self._idle_close:
            # In use, or used since: look again when it may have been idle long enough.
            wait = self._idle_close if self._lock.locked() else self._idle_close - idle_for
            self._idle = loop.call_later(wait, self._close_idle)
            return
        writer, self._reader, self._writer = self._writer, None, None
        writer.close()

    @staticmethod
    async def _roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         payload: bytes) -> bytes:
        writer.write(payload)
        await writer.drain()
        while True:
            line = await reader.readuntil(b"\n")
            line = line.strip().lstrip(protocol.DELIMITER)
            if line:
                return line
            # blank lines carry nothing; keep reading

    async def _ensure_synced(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is not None and self._writer is not None:
            return self._reader, self._writer
        try:
            reader, writer = await asyncio.open_unix_connection(self.path, limit=MAX_REPLY_BYTES)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise HostUnreachable(f"cannot connect to agent socket {self.path}: {exc}") from None
        except OSError as exc:
            raise HostUnreachable(f"cannot connect to agent socket {self.path}: {exc}") from None
        try:
            await asyncio.wait_for(self._sync(reader, writer), self._sync_timeout)
        except TimeoutError:
            await _close(writer)
            raise AgentNotConnected(
                f"no guest agent answers on {self.path} (sync timed out after "
                f"{self._sync_timeout:g} s)", command="guest-sync-delimited") from None
        except (OSError, asyncio.IncompleteReadError) as exc:
            await _close(writer)
            raise AgentNotConnected(f"agent connection lost during sync: {exc}",
                                    command="guest-sync-delimited") from None
        self._reader, self._writer = reader, writer
        return reader, writer

    async def _sync(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sync_id = next(_ids)
        writer.write(protocol.DELIMITER + protocol.encode_command(
            "guest-sync-delimited", {"id": sync_id}))
        await writer.drain()
        while True:
            # Everything before the agent's 0xFF is stale (an old reply, half a line): drop it.
            await reader.readuntil(protocol.DELIMITER)
            line = await reader.readuntil(b"\n")
            try:
                value = protocol.decode_reply(line.lstrip(protocol.DELIMITER),
                                              "guest-sync-delimited")
            except AgentProtocolError:
                continue
            if value == sync_id:
                return

    async def _drop(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            await _close(writer)

    async def aclose(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        async with self._lock:
            await self._drop()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
