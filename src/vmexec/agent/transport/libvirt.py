"""Agent through libvirt (``virDomainQemuAgentCommand``), on the local host or any remote URI."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from typing import Any

import libvirt
import libvirt_qemu

from vmexec.agent import errors, protocol
from vmexec.agent.transport.base import DEFAULT_TIMEOUT, AgentTransport
from vmexec.hypervisor import errors as hv
from vmexec.hypervisor.domains import DomainState, dashed, state_of
from vmexec.hypervisor.libvirt_host import LibvirtHost, translate

# libvirt wraps an agent's error reply as "... unable to execute QEMU agent command 'X': DESC".
_AGENT_DESC = re.compile(r"agent command '[^']*':\s*(?P<desc>.*)$", re.DOTALL)


class LibvirtTransport(AgentTransport):
    """Agent commands for one domain, through that domain's libvirt host connection.

    libvirt serialises agent commands per domain itself; the lock here keeps waiting callers
    out of the shared thread pool, so one busy VM cannot starve the others. A command that
    cannot even get its turn within its timeout (a frozen guest makes every command before it
    wait its full timeout) fails with :class:`AgentBusy` without having been sent.
    """

    def __init__(self, host: LibvirtHost, domain_uuid: str) -> None:
        self.host = host
        self.domain_uuid = dashed(domain_uuid)
        self.name = f"{host.uri}#{self.domain_uuid}"
        self._lock = asyncio.Lock()

    def _command(self, conn: libvirt.virConnect, text: str, timeout: int) -> str:
        dom = conn.lookupByUUIDString(self.domain_uuid)
        try:
            reply: str = libvirt_qemu.qemuAgentCommand(dom, text, timeout, 0)
        except libvirt.libvirtError as exc:
            # libvirt refuses agent commands for any domain that is not running, paused ones
            # included ("domain is not running"): only the domain's state tells a paused VM,
            # which will answer again, from one that is shut off.
            if not isinstance(translate(exc), hv.DomainNotRunning):
                raise
            try:
                state, words = state_of(dom)
            except libvirt.libvirtError:
                raise exc from None
            kind = hv.DomainPaused if state in (
                DomainState.PAUSED, DomainState.PMSUSPENDED) else hv.DomainNotRunning
            raise kind(f"VM[uuid:{self.domain_uuid}] is {words}",
                       code=exc.get_error_code()) from None
        return reply

    async def execute(
        self, command: str, arguments: Mapping[str, Any] | None = None, *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Any:
        text = protocol.encode_command(command, arguments).decode().rstrip("\n")
        # libvirt takes whole seconds; never 0 (that means "don't wait").
        seconds = max(1, math.ceil(timeout))
        try:
            async with asyncio.timeout(timeout):
                await self._lock.acquire()
        except TimeoutError:
            raise errors.AgentBusy(
                f"not sent: the agent's earlier commands did not finish within {timeout:g} s",
                command=command) from None
        try:
            reply = await self.host.call(lambda conn: self._command(conn, text, seconds))
        except hv.HypervisorError as exc:
            raise _translate(exc, command, seconds) from None
        finally:
            self._lock.release()
        return protocol.decode_reply(reply, command)

    async def aclose(self) -> None:
        pass  # the connection belongs to the host, shared by every domain on it


def _translate(exc: hv.HypervisorError, command: str, seconds: int) -> errors.AgentError:
    msg = exc.message
    if isinstance(exc, hv.DomainNotFound):
        return errors.DomainNotFound(msg, command=command)
    if isinstance(exc, hv.DomainPaused):
        return errors.DomainPaused(msg, command=command)
    if isinstance(exc, hv.DomainNotRunning):
        return errors.DomainNotRunning(msg, command=command)
    if isinstance(exc, hv.AgentNotConfigured):
        return errors.NoAgentChannel(msg, command=command)
    if isinstance(exc, hv.HostUnreachable):
        return errors.HostUnreachable(msg, command=command)
    if isinstance(exc, hv.AgentNotResponding):
        lowered = msg.lower()
        if "not connected" in lowered:
            return errors.AgentNotConnected(msg, command=command)
        return errors.AgentTimeout(f"agent did not answer within {seconds} s: {msg}",
                                   command=command)
    if isinstance(exc, hv.AgentReplyError):
        match = _AGENT_DESC.search(msg)
        return protocol.command_error(match.group("desc") if match else msg, command)
    return errors.AgentError(msg, command=command)


__all__ = ["LibvirtTransport"]
