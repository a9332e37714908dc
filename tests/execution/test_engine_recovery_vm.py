"""Nothing lost, and every error clear: the engine on real lab VMs, including the variants
without an agent channel, with the agent stopped or guest-exec disabled, and a stopped VM."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from fixtures.engine import target_of

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.errors import AgentTimeout
from vmexec.agent.targets import AgentTarget, LibvirtTarget
from vmexec.agent.transport.base import DEFAULT_TIMEOUT, AgentTransport
from vmexec.execution.engine import Executor
from vmexec.execution.errors import (
    ExecDisabled,
    GuestSetupError,
    GuestUnavailable,
    InvalidExecRequest,
    ResultLost,
    SetupReason,
    UnavailableReason,
)
from vmexec.execution.models import ExecRequest
from vmexec.hypervisor.libvirt_host import LibvirtHosts

pytestmark = pytest.mark.vm


class LosesExitedReply(AgentTransport):
    """The real libvirt transport, except that the first reply saying a process exited is
    lost on its way back (the agent has already freed its record), as on a flaky link."""

    def __init__(self, inner: AgentTransport) -> None:
        self.inner = inner
        self.name = inner.name
        self.lost = 0

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None, *,
                      timeout: float = DEFAULT_TIMEOUT) -> Any:
        reply = await self.inner.execute(command, arguments, timeout=timeout)
        if command == "guest-exec-status" and reply.get("exited") and self.lost == 0:
            self.lost += 1
            raise AgentTimeout("reply lost", command=command)
        return reply


class LossyDirectory(AgentDirectory):
    def _transport(self, target: AgentTarget) -> AgentTransport:
        return LosesExitedReply(super()._transport(target))


async def test_lost_exited_reply_is_recovered_from_guest_files(lab_vms) -> None:
    hosts = LibvirtHosts()
    executor = Executor(LossyDirectory(hosts))
    target = target_of(lab_vms[1])
    try:
        result = await executor.run(target, ExecRequest("echo saved; echo e >&2; exit 5"))
        assert (result.stdout.text, result.stderr.text, result.exit_code) == (
            "saved\n", "e\n", 5)
        transport = executor.agents.get(target).transport
        assert isinstance(transport, LosesExitedReply) and transport.lost == 1
    finally:
        await executor.aclose()
        await executor.agents.aclose()
        hosts.close()


async def test_result_survives_a_restart_of_vmexec(lab_vms) -> None:
    target = target_of(lab_vms[2])
    hosts = LibvirtHosts()
    first = Executor(AgentDirectory(hosts))
    run_id = "0123456789abcdef0123456789abcdef"
    task = asyncio.create_task(first.run(target, ExecRequest("sleep 2; echo late; exit 4"),
                                         run_id=run_id))
    await asyncio.sleep(0.5)
    task.cancel()  # vmexec "dies" while the command runs on in the guest
    with pytest.raises(asyncio.CancelledError):
        await task
    await first.agents.aclose()

    second = Executor(AgentDirectory(hosts))  # a new vmexec process, knowing only the run id
    try:
        result = await second.recover(target, run_id, timeout=30)
        assert (result.stdout.text, result.exit_code, result.timed_out) == ("late\n", 4, False)
        with pytest.raises(ResultLost):
            await second.recover(target, "f" * 32, timeout=1)
    finally:
        await second.aclose()
        await second.agents.aclose()
        hosts.close()


async def test_empty_command_is_refused(executor: Executor, vm: LibvirtTarget) -> None:
    with pytest.raises(InvalidExecRequest, match="empty"):
        await executor.run(vm, ExecRequest("  \n"))
    with pytest.raises(InvalidExecRequest, match="environment"):
        await executor.run(vm, ExecRequest("true", env={"BAD-NAME": "x"}))


async def test_missing_interpreter_working_directory_and_user(
        executor: Executor, vm: LibvirtTarget) -> None:
    with pytest.raises(GuestSetupError) as info:
        await executor.run(vm, ExecRequest("#!/usr/bin/perl\nprint 1"))
    assert info.value.reason is SetupReason.INTERPRETER_MISSING
    with pytest.raises(GuestSetupError) as info:
        await executor.run(vm, ExecRequest("#!/usr/bin/env ruby\nputs 1"))
    assert info.value.reason is SetupReason.INTERPRETER_MISSING
    with pytest.raises(GuestSetupError) as info:
        await executor.run(vm, ExecRequest("pwd", working_directory="/no/such/dir"))
    assert info.value.reason is SetupReason.WORKING_DIRECTORY_MISSING
    with pytest.raises(GuestSetupError) as info:
        await executor.run(vm, ExecRequest("id", run_as="nosuchuser"))
    assert info.value.reason is SetupReason.USER_MISSING


async def test_stopped_vm(executor: Executor, lab_variants) -> None:
    with pytest.raises(GuestUnavailable) as info:
        await executor.run(target_of(lab_variants["stopped"]), ExecRequest("true"))
    assert info.value.reason is UnavailableReason.VM_NOT_RUNNING


async def test_vm_without_agent_channel(executor: Executor, lab_variants) -> None:
    with pytest.raises(GuestUnavailable) as info:
        await executor.run(target_of(lab_variants["nochannel"]), ExecRequest("true"))
    assert info.value.reason is UnavailableReason.NO_AGENT_CHANNEL


async def test_agent_not_running_is_detected_quickly(executor: Executor, lab_variants) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(GuestUnavailable) as info:
        await executor.run(target_of(lab_variants["noagent"]), ExecRequest("true"))
    assert info.value.reason in (UnavailableReason.AGENT_NOT_CONNECTED,
                                 UnavailableReason.AGENT_NOT_RESPONDING)
    assert loop.time() - started < 15  # a clear error within seconds, never a hang


async def test_guest_exec_disabled(executor: Executor, lab_variants) -> None:
    with pytest.raises(ExecDisabled, match="guest-exec"):
        await executor.run(target_of(lab_variants["noexec"]), ExecRequest("true"))


async def test_unknown_domain(executor: Executor) -> None:
    with pytest.raises(GuestUnavailable) as info:
        await executor.run(LibvirtTarget("qemu:///system", "0" * 32), ExecRequest("true"))
    assert info.value.reason is UnavailableReason.VM_NOT_FOUND


class CountsCalls(AgentTransport):
    """The real libvirt transport, counting the agent commands that pass through it."""

    def __init__(self, inner: AgentTransport) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[str] = []

    async def execute(self, command: str, arguments: Mapping[str, Any] | None = None, *,
                      timeout: float = DEFAULT_TIMEOUT) -> Any:
        self.calls.append(command)
        return await self.inner.execute(command, arguments, timeout=timeout)


class CountingDirectory(AgentDirectory):
    def _transport(self, target: AgentTarget) -> AgentTransport:
        return CountsCalls(super()._transport(target))


async def test_small_text_output_comes_inline_and_large_or_binary_from_files(lab_vms) -> None:
    hosts = LibvirtHosts()
    executor = Executor(CountingDirectory(hosts))
    target = target_of(lab_vms[1])
    transport = executor.agents.get(target).transport
    assert isinstance(transport, CountsCalls)
    try:
        small = await executor.run(target, ExecRequest("echo out; echo err >&2"))
        assert (small.stdout.text, small.stderr.text) == ("out\n", "err\n")
        assert not [c for c in transport.calls if c.startswith("guest-file")]
        transport.calls.clear()
        binary = await executor.run(target, ExecRequest(r"printf 'a\000b'"))
        assert binary.stdout.data == b"a\x00b"
        assert "guest-file-read" in transport.calls
    finally:
        await executor.aclose()
        await executor.agents.aclose()
        hosts.close()
