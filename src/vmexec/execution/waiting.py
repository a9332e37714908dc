"""Waiting for a run to end: polling the agent, watching the status file, killing at the
deadline.

The agent says "exited" once, and only when every holder of the output pipes is gone, so the
poll also reads the run's status file now and then (a background process may hold the pipes
after the command ended). Polls start at once and back off, so a trivial command costs a few
agent round trips; a run that lasts gets a watchdog in the guest, which kills it at the
deadline even if vmexec is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import ExecStatus
from vmexec.execution.faults import CALL_TIMEOUT
from vmexec.execution.guest_helpers import KILL_WAIT, kill, start_helper
from vmexec.execution.guestfiles import RunFiles
from vmexec.execution.models import OutputChunk
from vmexec.execution.runs import Run, wait_for_agent
from vmexec.execution.status import Status

#: Status polls: first at once, then at a growing interval up to POLL_MAX seconds.
POLL_START, POLL_GROWTH, POLL_MAX = 0.002, 1.3, 0.25
#: A run still going after this many seconds gets a watchdog in the guest.
WATCHDOG_AFTER = 2.0
#: How often a long poll also looks at the run's status file (seconds).
HOLDER_CHECK = 1.0


async def wait_for_end(run: Run, files: RunFiles, deadline: float,
                       follow: bool) -> AsyncIterator[OutputChunk | ExecStatus | Status]:
    """Poll until the agent reports the run exited (yielding that reply, which the agent
    gives only once), or its status file shows it ended (yielding that status), or the
    reply is known lost (yielding nothing more); kill the run at the deadline. Transient
    faults are waited out until the deadline and the kill's own wait have passed."""
    loop = asyncio.get_running_loop()
    delay = POLL_START
    watchdog_at = loop.time() + min(WATCHDOG_AFTER, run.request.timeout)
    holder_check = loop.time() + HOLDER_CHECK
    until = deadline + KILL_WAIT
    while True:
        try:
            reply = await run.agent.exec_status(run.pid, timeout=CALL_TIMEOUT)
        except agent_errors.AgentCommandDisabled:
            raise
        except agent_errors.AgentCommandError:
            return  # the agent forgot the pid: its exited reply went astray
        except agent_errors.AgentError as exc:
            await wait_for_agent(run, exc, until)
            continue
        if reply.exited:
            yield reply
            return
        now = loop.time()
        chunks: list[OutputChunk] = []
        status: Status | None = None
        try:
            if follow:
                chunks = await files.read_new()
            if now >= holder_check:
                # Still "running" a while: a background process may hold the agent's
                # pipe after the command itself ended; the status file says so.
                holder_check = now + HOLDER_CHECK
                status = await files.status()
            if status is None and not run.killed and now >= deadline:
                await kill(run, run.pid, run.guest.run_dir)
                run.killed = True
            elif status is None and now >= watchdog_at and not run.killed:
                watchdog_at = float("inf")
                launch = run.guest.platform.watchdog(
                    run.run_id, run.pid, run.guest.run_dir, deadline - now + 2)
                if launch is not None and run.pid:
                    await start_helper(run, launch)
        except agent_errors.AgentError as exc:
            await wait_for_agent(run, exc, until)
        for chunk in chunks:
            yield chunk
        if status is not None:
            yield status
            return
        if run.killed and now >= until:
            return
        wake = delay if run.killed else min(delay, max(deadline - now, 0.001))
        await asyncio.sleep(max(wake, 0.05) if follow else wake)
        delay = min(delay * POLL_GROWTH, POLL_MAX)
