"""Agent failures as the exec service sees them: which end a command, which are waited out.

A result must survive what goes away and comes back: the host connection (libvirtd
restarting), a paused VM, a frozen QEMU process, an agent that stops answering for a while.
Those faults are *transient*: the engine waits until the agent answers again (with backoff,
up to the command's own deadline) and carries on, collecting the result from the run's files in
the guest. Only a VM that is gone (shut off, destroyed, undefined, no agent channel), an error
reply of the agent itself, or a deadline that passed ends the wait, and the error says which.
"""

from __future__ import annotations

import asyncio
import logging

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import GuestAgent
from vmexec.execution import errors

log = logging.getLogger(__name__)

#: Seconds allowed for one agent round trip before the agent counts as not responding.
CALL_TIMEOUT = 5.0
#: The VM is gone, or will never have an agent: no wait can help.
GONE: tuple[type[agent_errors.AgentError], ...] = (
    agent_errors.DomainNotFound, agent_errors.DomainNotRunning, agent_errors.NoAgentChannel)
#: Seconds a command that has not started waits for an agent that is not connected at all: a
#: rebooting guest reconnects within this, a guest without a running agent never does.
CONNECT_PATIENCE = 5.0
#: Seconds between probes of an agent that does not answer: doubling up to the maximum.
BACKOFF_START, BACKOFF_MAX = 0.1, 2.0
#: How long a run given up on (its agent silent past the deadline) is watched for, to be
#: stopped when the guest answers again; probed every ORPHAN_BACKOFF seconds at most.
ORPHAN_WATCH, ORPHAN_BACKOFF = 3600.0, 30.0


def transient(exc: agent_errors.AgentError) -> bool:
    """Whether the agent may answer again: anything but an error reply or a VM that is gone."""
    return not isinstance(exc, (agent_errors.AgentCommandError, *GONE))


def never_sent(exc: agent_errors.AgentError) -> bool:
    """Whether a failed agent command certainly did not reach the agent (so a ``guest-exec``
    that failed this way did not start anything)."""
    return isinstance(exc, (agent_errors.DomainPaused, agent_errors.AgentBusy,
                            agent_errors.AgentNotConnected))


def unavailable(exc: agent_errors.AgentError) -> errors.ExecError:
    """Translate an agent failure into the exec service's error (the one place that does)."""
    reason = errors.UnavailableReason
    table: list[tuple[type[agent_errors.AgentError], errors.UnavailableReason]] = [
        (agent_errors.DomainNotFound, reason.VM_NOT_FOUND),
        (agent_errors.DomainNotRunning, reason.VM_NOT_RUNNING),
        (agent_errors.DomainPaused, reason.VM_PAUSED),
        (agent_errors.NoAgentChannel, reason.NO_AGENT_CHANNEL),
        (agent_errors.AgentNotConnected, reason.AGENT_NOT_CONNECTED),
        (agent_errors.HostUnreachable, reason.HOST_UNREACHABLE),
        (agent_errors.AgentTimeout, reason.AGENT_NOT_RESPONDING),
        (agent_errors.AgentProtocolError, reason.AGENT_NOT_RESPONDING),
    ]
    if isinstance(exc, agent_errors.AgentCommandDisabled):
        return errors.ExecDisabled(f"the guest agent does not allow {exc.command}: {exc.message}")
    for kind, why in table:
        if isinstance(exc, kind):
            return errors.GuestUnavailable(str(exc), why)
    if transient(exc):  # e.g. libvirt failed mid-call: the agent could not be reached
        return errors.GuestUnavailable(str(exc), reason.AGENT_NOT_RESPONDING)
    return errors.GuestSetupError(f"the guest agent could not start the command: {exc}",
                                  errors.SetupReason.SPAWN_FAILED)


def gave_up(exc: agent_errors.AgentError, waited: float, run_id: str,
            started: bool) -> errors.ExecError:
    """The error for a transient fault that outlasted the command's deadline."""
    error = unavailable(exc)
    if not isinstance(error, errors.GuestUnavailable):
        return error
    if started:
        fate = (f"the command (run {run_id}) may still run in the guest, and is stopped "
                f"there if the guest answers again within {ORPHAN_WATCH / 60:g} min; its "
                "result could not be collected")
    else:
        fate = f"the command (run {run_id}) was not started"
    return errors.GuestUnavailable(
        f"{error.message}; still so after {waited:.0f} s, at the command's deadline: {fate}",
        error.reason)


async def await_agent(agent: GuestAgent, fault: agent_errors.AgentError, until: float, *,
                      run_id: str, started: bool, call_timeout: float,
                      backoff_max: float = BACKOFF_MAX,
                      connect_patience: float = CONNECT_PATIENCE) -> None:
    """Wait until ``agent`` answers again after the transient failure ``fault``.

    ``until`` is the loop time at which the wait ends; ``started``: whether the run may be
    running in the guest (a run not started gives an unconnected agent only
    ``connect_patience`` seconds).

    Raises:
        ExecError: the fault is not transient or turned into one that is not (the VM is gone),
            or ``until`` passed (:func:`gave_up`).
    """
    loop = asyncio.get_running_loop()
    began = loop.time()
    unconnected_since: float | None = None
    delay = BACKOFF_START
    log.info("run %s: waiting for the guest agent %s: %s", run_id, agent.name, fault)
    while True:
        if not transient(fault):
            raise unavailable(fault)
        now = loop.time()
        if isinstance(fault, agent_errors.AgentNotConnected) and not started:
            unconnected_since = now if unconnected_since is None else unconnected_since
            if now - unconnected_since >= min(connect_patience, until - began):
                raise unavailable(fault)
        else:
            unconnected_since = None
        if now >= until:
            raise gave_up(fault, now - began, run_id, started)
        await asyncio.sleep(min(delay, until - now))
        delay = min(delay * 2, backoff_max)
        try:
            await agent.ping(timeout=call_timeout)
        except agent_errors.AgentCommandError:
            break  # an error reply is an answer: the agent is back
        except agent_errors.AgentError as exc:
            fault = exc
            continue
        break
    log.info("run %s: the guest agent %s answers again after %.1f s", run_id, agent.name,
             loop.time() - began)
