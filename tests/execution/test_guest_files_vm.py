"""Guest files, on a lab VM of this module's own (its agent is frozen for a while, its disk
filled, its agent fed large input: the shared lab VMs are left alone).

A guest's run directory stays bounded (issue 10, A5); a full disk is an error (A6); large
stdin and environments travel as run files (A7).

Runs that end in an error are cleaned up too; a cleanup that fails (the agent does not answer)
is retried until it is done; files of runs whose cleanup was lost (vmexec restarted) go once
they are older than the retention. Files are checked through a second, independent executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import sys
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
from fixtures.engine import new_executor, sh, target_of

from vmexec.agent.targets import LibvirtTarget
from vmexec.execution.engine import Executor, new_run_id
from vmexec.execution.errors import (
    ExecError,
    GuestSetupError,
    InvalidExecRequest,
    OutputNotStored,
)
from vmexec.execution.linux import RUN_DIRS
from vmexec.execution.models import ExecRequest, OutputChunk, StreamName
from vmexec.lab import Lab

pytestmark = pytest.mark.vm

PREFIX = "vmexec-guestfiles"
RUN_DIR = RUN_DIRS[0]
#: How long a file check may wait for a cleanup (a bound for failing, not a speed claim).
WAIT_LIMIT = 120.0


@pytest.fixture(scope="module")
def own_vm() -> Iterator[LibvirtTarget]:
    lab = Lab(PREFIX, progress=lambda message: print(f"lab: {message}", file=sys.stderr))
    vm = lab.up(1)[0]
    yield target_of(vm)
    if os.environ.get("CI", "").lower() == "true":
        lab.down(names=[vm.name])


def engine() -> contextlib.AbstractAsyncContextManager[Executor]:
    return new_executor(pool_size=4)


async def files_of(observer: Executor, vm: LibvirtTarget, run_ids: Sequence[str]) -> list[str]:
    patterns = " ".join(f"-e {r}" for r in run_ids)
    return (await sh(observer, vm, f"ls -a {' '.join(RUN_DIRS)} 2>/dev/null "
                                   f"| grep {patterns} || true")).split()


async def files_left_after_waiting(observer: Executor, vm: LibvirtTarget,
                                   run_ids: Sequence[str]) -> list[str]:
    """The runs' files once they are gone, or those still there after WAIT_LIMIT."""
    loop = asyncio.get_running_loop()
    until = loop.time() + WAIT_LIMIT
    left = ["(not checked)"]
    while loop.time() < until:
        with contextlib.suppress(ExecError):  # the agent may still be frozen
            left = await files_of(observer, vm, run_ids)
            if not left:
                break
        await asyncio.sleep(1)
    return left


async def wait_for_files(observer: Executor, vm: LibvirtTarget, run_id: str) -> None:
    """Until the run has files in the guest (it has started), at most WAIT_LIMIT."""
    loop = asyncio.get_running_loop()
    until = loop.time() + WAIT_LIMIT
    while not await files_of(observer, vm, [run_id]):
        assert loop.time() < until, f"run {run_id} left no files in the guest"
        await asyncio.sleep(0.2)


def freezer(after: float, seconds: int) -> str:
    """Guest shell text that stops the guest's qemu-ga (SIGSTOP) ``after`` seconds from now
    for ``seconds``, in the background: a real agent that does not answer, then answers again
    (a process of the guest sends it SIGCONT)."""
    return ("p=$(pidof qemu-ga); [ -n \"$p\" ] || exit 1; "
            f"(sleep {after}; kill -STOP $p; sleep {seconds}; kill -CONT $p) "
            "</dev/null >/dev/null 2>&1 8>&- 9>&- &")


async def freeze_agent(executor: Executor, vm: LibvirtTarget, seconds: int) -> None:
    agent = executor.agents.get(vm)
    await agent.exec("/bin/sh", ["-c", freezer(0.3, seconds)], capture_output=False)
    await asyncio.sleep(0.5)


async def test_runs_that_end_in_an_error_leave_no_files(own_vm: LibvirtTarget) -> None:
    async with engine() as executor, engine() as observer:
        setup_failed, timed_out, agent_lost = (new_run_id() for _ in range(3))
        with pytest.raises(GuestSetupError):
            await executor.run(own_vm, ExecRequest("#!/no/such/interpreter\n"),
                               run_id=setup_failed)
        result = await executor.run(own_vm, ExecRequest("sleep 30", timeout=1),
                                    run_id=timed_out)
        assert result.timed_out
        # The agent stops answering while a run goes on, past its deadline and the time
        # vmexec waits after it: the run ends in an error; its files are in the guest. The
        # freeze starts once the run's files exist (not after a fixed sleep: on a loaded
        # machine the run could otherwise end before the agent stops answering).
        run = asyncio.create_task(executor.run(
            own_vm, ExecRequest("sleep 60; echo late", timeout=4), run_id=agent_lost))
        await wait_for_files(observer, own_vm, agent_lost)
        await freeze_agent(observer, own_vm, 30)
        with pytest.raises(ExecError):
            await run
        left = await files_left_after_waiting(observer, own_vm,
                                              [setup_failed, timed_out, agent_lost])
        assert left == []


async def test_a_failed_cleanup_is_retried_until_done(
        own_vm: LibvirtTarget, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vmexec.execution")
    async with engine() as executor, engine() as observer:
        # The agent freezes as soon as the run's result is in, for longer than the cleanup
        # (due CLEANUP_DELAY after the run) waits for an answer, even behind other calls that
        # libvirt serialises before it.
        result = await executor.run(own_vm, ExecRequest("echo kept until cleaned"))
        assert result.stdout.text == "kept until cleaned\n"
        await freeze_agent(observer, own_vm, 20)
        left = await files_left_after_waiting(observer, own_vm, [result.run_id])
        assert left == []
        assert "could not clean up" in caplog.text  # the first attempt did fail


async def test_files_older_than_the_retention_go_with_the_next_cleanup(
        own_vm: LibvirtTarget) -> None:
    old, recent = new_run_id(), new_run_id()
    async with engine() as executor, engine() as observer:
        # A retention of a second: the sweep is due at this engine's first cleanup (with
        # the default, 10 minutes after it first used the guest), and takes files older than
        # a minute (find's unit).
        executor.file_retention = 1.0
        await sh(observer, own_vm,
                 f"mkdir -p {RUN_DIR} && cd {RUN_DIR} && "
                 f"for k in out err rc pid sh; do touch -d '2020-01-01 00:00:00' {old}.$k; done"
                 f" && touch {recent}.out && touch -d '2020-01-01 00:00:00' notes.old")
        try:
            await executor.run(own_vm, ExecRequest("true"))  # any run there, then its cleanup
            left = await files_left_after_waiting(observer, own_vm, [old])
            assert left == []
            kept = await sh(observer, own_vm, f"ls {RUN_DIR}")
            assert f"{recent}.out" in kept.split()  # younger than the retention
            assert "notes.old" in kept.split()  # not a run's file
        finally:
            await sh(observer, own_vm, f"rm -f {RUN_DIR}/{recent}.out {RUN_DIR}/notes.old")


async def agent_sh(executor: Executor, vm: LibvirtTarget, script: str) -> None:
    """Run ``script`` through the bare agent (no run files: the disk under test is full)."""
    agent = executor.agents.get(vm)
    pid = await agent.exec("/bin/sh", ["-c", script], capture_output=True)
    for _ in range(600):
        status = await agent.exec_status(pid)
        if status.exited:
            break
        await asyncio.sleep(0.05)
    assert status.exited and status.exit_code == 0, status.stderr


@contextlib.asynccontextmanager
async def small_run_dir(executor: Executor, vm: LibvirtTarget) -> AsyncIterator[None]:
    """A 1 MiB tmpfs mounted over the guest's first run directory: a disk that fills up."""
    await agent_sh(executor, vm, f"mkdir -p {RUN_DIR} && "
                                 f"mount -t tmpfs -o size=1m,mode=700 vmexec-test {RUN_DIR}")
    try:
        yield
    finally:
        await agent_sh(executor, vm, f"umount -l {RUN_DIR}")  # lazily: runs may hold files


async def test_output_larger_than_the_guests_free_space_is_an_error(
        own_vm: LibvirtTarget) -> None:
    async with engine() as executor, engine() as observer, small_run_dir(observer, own_vm):
        with pytest.raises(OutputNotStored) as info:
            await executor.run(own_vm, ExecRequest(
                "head -c 2097152 /dev/zero | tr '\\0' a; echo done"))
        assert info.value.ran
        assert "could not store the command's output" in info.value.message
        # Output that fits is no error, on the same disk.
        result = await executor.run(own_vm, ExecRequest("echo fits"))
        assert (result.stdout.text, result.exit_code) == ("fits\n", 0)


async def test_a_run_directory_full_before_the_run_is_not_used(own_vm: LibvirtTarget) -> None:
    async with engine() as executor, engine() as observer, small_run_dir(observer, own_vm):
        await agent_sh(observer, own_vm, f"dd if=/dev/zero of={RUN_DIR}/filler bs=65536 "
                                         f"2>/dev/null; true")
        result = await executor.run(own_vm, ExecRequest("echo complete; echo err >&2"))
        assert (result.stdout.text, result.stderr.text, result.exit_code) == (
            "complete\n", "err\n", 0)


# -- large input (issue 10, A7): through run files in pieces, never one oversized request -----

async def assert_agent_answers(executor: Executor, vm: LibvirtTarget) -> None:
    """A trivial command right after: the agent connection is not wedged."""
    result = await executor.run(vm, ExecRequest("echo still answering"))
    assert (result.stdout.text, result.exit_code) == ("still answering\n", 0)


async def test_one_mebibyte_of_stdin(own_vm: LibvirtTarget) -> None:
    data = os.urandom(1024 * 1024)
    async with engine() as executor:
        # As in a guest's first run: the run directory does not exist yet.
        await agent_sh(executor, own_vm, f"rm -rf {RUN_DIR}")
        result = await executor.run(own_vm, ExecRequest("sha256sum", stdin=data))
        assert result.stdout.text.split() == [hashlib.sha256(data).hexdigest(), "-"]
        await assert_agent_answers(executor, own_vm)


async def test_a_400_kb_environment(own_vm: LibvirtTarget) -> None:
    # Four values of 100 kB: each under Linux's limit per variable, so programs get them too.
    env = {name: secrets.token_hex(50_000) for name in ("A", "B", "C", "D")}
    async with engine() as executor:
        result = await executor.run(own_vm, ExecRequest(
            'printf %s "$A$B$C$D" | sha256sum; env | grep -c "^[ABCD]="', env=env))
        digest, _, count = result.stdout.text.split()
        joined = "".join(env.values()).encode()
        assert (digest, count) == (hashlib.sha256(joined).hexdigest(), "4")
        await assert_agent_answers(executor, own_vm)


async def test_an_environment_value_over_the_linux_limit_is_refused(
        own_vm: LibvirtTarget) -> None:
    async with engine() as executor:
        with pytest.raises(InvalidExecRequest, match="at most 131071 bytes per variable"):
            await executor.run(own_vm, ExecRequest("true", env={"BIG": "x" * 400_000}))
        await assert_agent_answers(executor, own_vm)


async def test_a_long_non_ascii_command(own_vm: LibvirtTarget) -> None:
    # 60,000 characters (within the 65,536 allowed) that JSON escapes to 6 bytes each.
    command = "echo start\n: '" + "\u00e9" * 60_000 + "'\necho done"
    async with engine() as executor:
        result = await executor.run(own_vm, ExecRequest(command))
        assert (result.stdout.text, result.exit_code) == ("start\ndone\n", 0)
        await assert_agent_answers(executor, own_vm)


async def test_a_run_recovered_after_a_restart_is_found_past_a_full_run_directory(
        own_vm: LibvirtTarget) -> None:
    # The full first directory keeps the empty pid file the refused start opened; the run
    # itself went on in the next directory. A restarted vmexec must collect it from there
    # (it used to take the empty pid file for the run: no output, no exit code, at once).
    run_id = new_run_id()
    flag = f"/tmp/vmexec-recover-{run_id}"
    command = (f"echo before; for i in $(seq 300); do [ -e {flag} ] && break; sleep 0.2; "
               f"done; echo after; exit 7")
    async with engine() as observer, small_run_dir(observer, own_vm):
        await agent_sh(observer, own_vm, f"dd if=/dev/zero of={RUN_DIR}/filler bs=65536 "
                                         f"2>/dev/null; true")
        async with engine() as first:
            stream = first.stream(own_vm, ExecRequest(command, timeout=120), run_id=run_id)
            assert await anext(stream) == OutputChunk(StreamName.STDOUT, b"before\n")
            await stream.aclose()  # vmexec stops while the command runs
        async with engine() as restarted:
            await agent_sh(observer, own_vm, f"touch {flag}")
            result = await restarted.recover(own_vm, run_id, timeout=60)
        await agent_sh(observer, own_vm, f"rm -f {flag}")
    assert (result.stdout.text, result.exit_code) == ("before\nafter\n", 7)
