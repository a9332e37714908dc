"""The guest-side check behind a lost ``guest-exec`` reply: a run's process is found by its
command line (it holds ``>DIR/ID.pid`` from the moment the agent starts it), and nothing else
is taken for it, the checking helper and ``grep`` included."""

from __future__ import annotations

import asyncio

import pytest
from fixtures.engine import target_of

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import LibvirtTarget
from vmexec.execution.engine import Executor, new_run_id
from vmexec.execution.linux import RUN_DIRS, LinuxPlatform
from vmexec.execution.models import ExecRequest
from vmexec.execution.platform import Launch
from vmexec.hypervisor.libvirt_host import LibvirtHosts

pytestmark = pytest.mark.vm


async def exit_code(executor: Executor, target: LibvirtTarget, launch: Launch) -> int | None:
    agent = executor.agents.get(target)
    pid = await agent.exec(launch.path, launch.args, capture_output=True)
    for _ in range(200):
        status = await agent.exec_status(pid)
        if status.exited:
            return status.exit_code
        await asyncio.sleep(0.05)
    raise AssertionError(f"{launch.args[1][:40]!r} did not finish in the guest")


async def test_a_run_is_found_by_its_command_line_alone(lab_vms) -> None:
    platform = LinuxPlatform()
    hosts = LibvirtHosts()
    executor = Executor(AgentDirectory(hosts))
    target = target_of(lab_vms[2])
    run_id = new_run_id()
    try:
        running = asyncio.create_task(executor.run(target, ExecRequest("sleep 3"),
                                                   run_id=run_id))
        await asyncio.sleep(1.0)
        # Its pid file goes: only the command line is left to find it by.
        await exit_code(executor, target, Launch(
            "/bin/sh", ["-c", f"rm -f {RUN_DIRS[0]}/{run_id}.pid"]))
        assert await exit_code(executor, target, platform.find_run(run_id, RUN_DIRS[0])) == 0
        # Another run id, or this one in another run directory, is nobody.
        assert await exit_code(executor, target,
                               platform.find_run(new_run_id(), RUN_DIRS[0])) != 0
        assert await exit_code(executor, target, platform.find_run(run_id, RUN_DIRS[1])) != 0
        assert (await running).exit_code == 0
        # Once the run is over, it is not found any more.
        assert await exit_code(executor, target, platform.find_run(run_id, RUN_DIRS[0])) != 0
    finally:
        await executor.aclose()
        await executor.agents.aclose()
        hosts.close()
