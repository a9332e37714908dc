"""Helper processes a run starts in its guest besides the command: kill, watchdog, looking
for a run whose start reply was lost, making the run directory.

Helpers may run twice (a kill of a run that is gone, a look that is repeated after a fault),
so a caller may start one again after a transient fault.
"""

from __future__ import annotations

import asyncio
import logging

from vmexec.agent import errors as agent_errors
from vmexec.execution import errors
from vmexec.execution.faults import CALL_TIMEOUT, transient
from vmexec.execution.guestfiles import RunFiles
from vmexec.execution.platform import KillReason, Launch
from vmexec.execution.results import shell_status
from vmexec.execution.runs import Run

log = logging.getLogger(__name__)

#: Seconds past the deadline (after the kill) before vmexec stops waiting for the agent.
KILL_WAIT = 15.0
#: Seconds a helper that only looks (e.g. for a run's process) may take in the guest.
LOOK_TIMEOUT = 10.0


async def start_helper(run: Run, launch: Launch, *, wait: float = 0.0,
                       required: bool = False) -> None:
    """Start a helper process (kill, watchdog) in the guest; with ``wait``, wait that long
    for it to finish (a kill returns once everything it kills is gone). Failures are
    logged, except transient ones of a ``required`` helper: those are raised, for the
    caller to start it again once the agent answers (helpers may run twice)."""
    try:
        pid = await run.agent.exec(launch.path, launch.args, input_data=launch.input_data,
                                   capture_output=launch.capture_output,
                                   timeout=CALL_TIMEOUT)
        loop = asyncio.get_running_loop()
        until, delay = loop.time() + wait, 0.01
        while loop.time() < until:
            if (await run.agent.exec_status(pid, timeout=CALL_TIMEOUT)).exited:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.2)
    except agent_errors.AgentError as exc:
        if required and transient(exc):
            raise
        log.warning("helper for run %s failed: %s", run.run_id, exc)
        return
    run.guest.cleanup.reap(pid)


async def kill(run: Run, pid: int | None, run_dir: str, *,
               why: KillReason = KillReason.TIMEOUT) -> None:
    """Kill the run's whole process tree and wait until it is gone (or KILL_WAIT passed);
    ``why`` is left as a marker file in the run directory.

    Raises: AgentError — transient: start the kill again once the agent answers.
    """
    await start_helper(run, run.guest.platform.kill(run.run_id, pid, run_dir, why=why),
                       wait=KILL_WAIT, required=True)


async def look(run: Run, launch: Launch) -> int | None:
    """Run a helper that only looks at the guest; its exit code (None: killed).

    Raises: AgentError.
    """
    pid = await run.agent.exec(launch.path, launch.args, input_data=launch.input_data,
                               capture_output=launch.capture_output, timeout=CALL_TIMEOUT)
    loop = asyncio.get_running_loop()
    until, delay = loop.time() + LOOK_TIMEOUT, 0.01
    while loop.time() < until:
        reply = await run.agent.exec_status(pid, timeout=CALL_TIMEOUT)
        if reply.exited:
            return shell_status(reply)
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.2)
    run.guest.cleanup.reap(pid)
    raise agent_errors.AgentTimeout(f"a helper in the guest did not finish within "
                                    f"{LOOK_TIMEOUT:g} s", command="guest-exec-status")


async def adopt(run: Run) -> bool:
    """After a ``guest-exec`` whose reply was lost: whether it started the run; if so
    the run continues with the process the agent started (its pid is in the pid file).

    The agent handles commands in order and answers a ``guest-exec`` only once the
    process exists, so once it answers anything later, the lost one either started a
    process (found here by its pid file or, before it wrote that, by its command line)
    or never will.

    Raises: AgentError; GuestUnavailable — the guest cannot tell whether it started.
    """
    guest = run.guest
    files = RunFiles(run.agent, guest.platform, run.run_id, guest.run_dir)
    pid = await files.pid()
    if pid is None and await files.status() is None:
        launch = guest.platform.find_run(run.run_id, guest.run_dir)
        if launch is None:
            raise errors.GuestUnavailable(
                f"the agent's reply to the start of run {run.run_id} was lost and this "
                "guest cannot tell whether it started: it may run",
                errors.UnavailableReason.AGENT_NOT_RESPONDING)
        if await look(run, launch) != 0:
            log.info("run %s: its start was lost before the guest got it", run.run_id)
            return False
        pid = await files.wait_pid(LOOK_TIMEOUT)
    run.pid = pid or 0  # 0: the agent does not know it; the status file will tell
    log.info("run %s: its start reply was lost but it runs (pid %s)", run.run_id, pid)
    return True


async def stop_if_started(run: Run) -> None:
    """Kill a run given up on, if its start reached the guest.

    Raises: AgentError; GuestUnavailable (from :func:`adopt`).
    """
    if run.pid == 0 and not await adopt(run):
        return  # its start never reached the guest
    await kill(run, run.pid, run.guest.run_dir)
    log.warning("run %s: stopped in the guest, which answered after vmexec gave up on it",
                run.run_id)
