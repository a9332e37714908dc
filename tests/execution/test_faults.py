"""Which agent failures end a command and which are waited out, and the wait itself, over a
scripted transport (the fault suite, tests/faults, does the same on real VMs)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import GuestAgent
from vmexec.agent.transport.base import DEFAULT_TIMEOUT, AgentTransport
from vmexec.execution.errors import GuestUnavailable, UnavailableReason
from vmexec.execution.faults import await_agent, never_sent, transient

RUN = "0123456789abcdef0123456789abcdef"


class Scripted(AgentTransport):
    """Answers each call with the next item of ``script`` (an exception is raised); once
    the script is used up, every call raises its last item, or answers ``{}``."""

    name = "scripted"

    def __init__(self, *script: Exception | None) -> None:
        self.script = list(script)
        self.calls: list[str] = []

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None, *,
                      timeout: float = DEFAULT_TIMEOUT) -> Any:
        self.calls.append(command)
        item = self.script.pop(0) if len(self.script) > 1 else (
            self.script[0] if self.script else None)
        if item is not None:
            raise item
        return {}


def paused() -> agent_errors.AgentError:
    return agent_errors.DomainPaused("VM[uuid:x] is paused", command="guest-ping")


async def wait(transport: Scripted, fault: agent_errors.AgentError, *, within: float,
               started: bool = False, connect_patience: float = 5.0) -> None:
    until = asyncio.get_running_loop().time() + within
    await await_agent(GuestAgent(transport), fault, until, run_id=RUN, started=started,
                      call_timeout=1.0, backoff_max=0.05, connect_patience=connect_patience)


@pytest.mark.parametrize(("fault", "waited_out", "maybe_sent"), [
    (agent_errors.DomainPaused("paused"), True, False),
    (agent_errors.AgentBusy("queue did not move"), True, False),
    (agent_errors.AgentNotConnected("no agent on the channel"), True, False),
    (agent_errors.HostUnreachable("libvirtd restarting"), True, True),
    (agent_errors.AgentTimeout("frozen"), True, True),
    (agent_errors.AgentProtocolError("garbage"), True, True),
    (agent_errors.AgentError("libvirt failed mid-call"), True, True),
    (agent_errors.DomainNotRunning("shut off (destroyed)"), False, True),
    (agent_errors.DomainNotFound("undefined"), False, True),
    (agent_errors.NoAgentChannel("no channel"), False, True),
    (agent_errors.AgentCommandError("pid unknown"), False, True),
])
def test_which_faults_are_waited_out_and_which_certainly_sent_nothing(
        fault: agent_errors.AgentError, waited_out: bool, maybe_sent: bool) -> None:
    assert transient(fault) is waited_out
    assert never_sent(fault) is not maybe_sent


async def test_the_wait_ends_when_the_agent_answers_again() -> None:
    transport = Scripted(paused(), paused(), None)
    await wait(transport, paused(), within=10)
    assert transport.calls == ["guest-ping"] * 3


async def test_a_vm_that_turns_out_gone_ends_the_wait_at_once() -> None:
    transport = Scripted(agent_errors.DomainNotRunning("VM[uuid:x] is shut off (destroyed)"))
    with pytest.raises(GuestUnavailable) as info:
        await wait(transport, paused(), within=10)
    assert info.value.reason is UnavailableReason.VM_NOT_RUNNING
    assert "destroyed" in info.value.message and transport.calls == ["guest-ping"]


@pytest.mark.parametrize(("started", "fate"), [
    (False, f"the command (run {RUN}) was not started"),
    (True, f"the command (run {RUN}) may still run in the guest"),
])
async def test_a_fault_that_lasts_to_the_deadline_says_so_and_whether_it_started(
        started: bool, fate: str) -> None:
    with pytest.raises(GuestUnavailable) as info:
        await wait(Scripted(paused()), paused(), within=0.3, started=started)
    assert info.value.reason is UnavailableReason.VM_PAUSED
    assert "at the command's deadline" in info.value.message and fate in info.value.message


async def test_an_agent_never_connected_gets_a_new_command_only_a_short_wait() -> None:
    never = agent_errors.AgentNotConnected("QEMU guest agent is not connected")
    with pytest.raises(GuestUnavailable) as info:
        await wait(Scripted(never), never, within=60, connect_patience=0.3)
    assert info.value.reason is UnavailableReason.AGENT_NOT_CONNECTED
    # A run that may be running is waited for up to its deadline instead.
    with pytest.raises(GuestUnavailable, match="at the command's deadline"):
        await wait(Scripted(never), never, within=0.6, started=True, connect_patience=0.3)
