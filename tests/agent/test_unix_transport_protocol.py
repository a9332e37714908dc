"""The unix-socket transport's framing and resync, against scripted protocol peers.

These peers misbehave on purpose (answer late, send stale replies, stay silent), which a real
qemu-ga cannot be made to do on demand; the happy paths run against real agents elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from vmexec.agent.errors import (
    AgentCommandDisabled,
    AgentCommandError,
    AgentNotConnected,
    AgentTimeout,
    HostUnreachable,
)
from vmexec.agent.transport.unix import UnixSocketTransport


class ScriptedPeer:
    """Answers guest-sync-delimited properly; other commands as ``replies`` says."""

    def __init__(self, path: Path, *, silent: bool = False) -> None:
        self.path = path
        self.silent = silent
        self.delay: dict[str, float] = {}
        self.replies: dict[str, dict[str, object]] = {
            "guest-ping": {"return": {}},
            "guest-exec": {"error": {"class": "GenericError",
                                     "desc": "Command guest-exec has been disabled"}},
            "guest-exec-status": {"error": {"class": "GenericError",
                                            "desc": "Invalid parameter 'pid'"}},
        }
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def __aenter__(self) -> ScriptedPeer:
        self.server = await asyncio.start_unix_server(self.serve, path=str(self.path))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while line := await reader.readline():
                if self.silent:
                    continue
                message = json.loads(line.replace(b"\xff", b""))
                command = message["execute"]
                if command == "guest-sync-delimited":
                    # A stale reply in front of the sync reply, as after a lost late answer.
                    writer.write(b'{"return": "stale"}\n\xff')
                    writer.write(json.dumps({"return": message["arguments"]["id"]}).encode()
                                 + b"\n")
                else:
                    await asyncio.sleep(self.delay.get(command, 0))
                    writer.write(json.dumps(self.replies[command]).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


@pytest.fixture
def sock(tmp_path: Path) -> Path:
    return tmp_path / "agent.sock"


async def test_sync_drops_stale_data_and_replies_are_decoded(sock: Path) -> None:
    async with ScriptedPeer(sock):
        transport = UnixSocketTransport(str(sock))
        assert await transport.execute("guest-ping") == {}
        assert await transport.execute("guest-ping") == {}
        await transport.aclose()


async def test_late_reply_after_timeout_does_not_leak_into_next_call(sock: Path) -> None:
    async with ScriptedPeer(sock) as peer:
        transport = UnixSocketTransport(str(sock))
        peer.delay["guest-ping"] = 0.5
        with pytest.raises(AgentTimeout):
            await transport.execute("guest-ping", timeout=0.1)
        peer.delay.clear()
        peer.replies["guest-info"] = {"return": {"version": "x"}}
        assert await transport.execute("guest-info") == {"version": "x"}
        assert peer.connections == 2  # resynced on a fresh connection
        await transport.aclose()


async def test_error_replies_are_typed(sock: Path) -> None:
    async with ScriptedPeer(sock):
        transport = UnixSocketTransport(str(sock))
        with pytest.raises(AgentCommandDisabled):
            await transport.execute("guest-exec", {"path": "/bin/true"})
        with pytest.raises(AgentCommandError, match="Invalid parameter") as info:
            await transport.execute("guest-exec-status", {"pid": 1})
        assert not isinstance(info.value, AgentCommandDisabled)
        await transport.aclose()


async def test_silent_peer_is_not_connected_within_sync_timeout(sock: Path) -> None:
    async with ScriptedPeer(sock, silent=True):
        transport = UnixSocketTransport(str(sock), sync_timeout=0.3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(AgentNotConnected):
            await transport.execute("guest-ping")
        assert loop.time() - started < 2
        await transport.aclose()


async def test_missing_socket_is_unreachable(sock: Path) -> None:
    with pytest.raises(HostUnreachable):
        await UnixSocketTransport(str(sock)).execute("guest-ping")


async def test_idle_connection_is_released_and_reopened(sock: Path) -> None:
    """An agent socket serves one client at a time: an idle client lets go of it."""
    async with ScriptedPeer(sock) as peer:
        transport = UnixSocketTransport(str(sock), idle_close=0.2)
        assert await transport.execute("guest-ping") == {}
        await asyncio.sleep(0.5)
        assert peer.connections == 1
        other = UnixSocketTransport(str(sock))  # another client gets the socket meanwhile
        assert await other.execute("guest-ping") == {}
        await other.aclose()
        assert await transport.execute("guest-ping") == {}  # reconnected and resynced
        assert peer.connections == 3
        await transport.aclose()
