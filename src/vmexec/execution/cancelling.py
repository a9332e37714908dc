"""Cancelling a run: the timeout's kill of its whole process tree, on request.

A run this vmexec follows (its ``run``, ``stream`` or ``recover`` is going) is marked, so it
ends as ``Outcome.CANCELLED`` with its output so far; if its ``guest-exec`` has not gone out
it never starts. A run nobody here follows (vmexec restarted) is found by its files in the
guest and killed there. Either kill leaves the marker file ``<run id>.cancelled`` in the run
directory, from which a later ``recover`` reports the run cancelled. A run that ended, or was
cancelled already, is left alone (``False``).
"""

from __future__ import annotations

import asyncio

from vmexec.execution.guest_helpers import KILL_WAIT, kill
from vmexec.execution.guestfiles import RunFiles
from vmexec.execution.platform import KillReason
from vmexec.execution.runs import Run, retry

#: Seconds a cancel waits for an agent that does not answer before it gives up (raising).
CANCEL_WAIT = KILL_WAIT


class NeverStarted(Exception):
    """The run was cancelled before its guest-exec went out."""


async def cancel_followed(run: Run) -> bool:
    """Cancel a run this engine follows; whether this call stopped it.

    Raises: ExecError — the guest did not answer (the run is not marked cancelled then, so
    the cancel may be tried again).
    """
    # (No await before a decision is recorded: concurrent cancels see it at once.)
    if run.cancelled or run.cancelling or run.ended:
        return False
    if not run.launched and not run.starting:
        run.cancelled = True  # its start sees it before the guest-exec: it never runs
        return True
    run.cancelling = True
    try:
        if run.starting:
            # A guest-exec is on its way: wait for its reply (or for the start to give up
            # before sending it again: it sees ``cancelling`` then, and never runs).
            await run.start_settled.wait()
            if not run.launched:
                return run.cancelled  # False: its start failed on its own
        until = asyncio.get_running_loop().time() + CANCEL_WAIT
        files = run.files or RunFiles(run.agent, run.guest.platform, run.run_id,
                                      run.guest.run_dir)
        run_dir = files.run_dir or await retry(run, files.locate, until)
        if run_dir is None or await retry(run, files.status, until) is not None:
            return False  # it ended on its own (its result says how), or left no trace
        run.cancelled = True
        # A run adopted or recovered without the agent's pid: its pid file has it.
        pid: int | None = run.pid or await retry(run, files.pid, until)
        await retry(run, lambda: kill(run, pid, run_dir, why=KillReason.CANCELLED), until)
    except BaseException:
        run.cancelled = False
        raise
    finally:
        run.cancelling = False
    run.wake()  # its poll sees the end at once
    return True


async def cancel_unfollowed(run: Run) -> bool:
    """Cancel a run nobody follows here, found by its files; whether this call stopped it
    (``run`` only names it: its request is not known).

    Raises: ExecError — the guest did not answer.
    """
    until = asyncio.get_running_loop().time() + CANCEL_WAIT
    files = RunFiles(run.agent, run.guest.platform, run.run_id, None)

    async def still_running() -> bool:
        if await files.locate() is None:
            return False  # never started, or ended and cleaned up
        if await files.status() is not None or await files.exists(KillReason.CANCELLED):
            return False
        # Linux guests tell whether its first process lives (killed without a status).
        return files.platform.separator != "/" or await files.alive()

    if not await retry(run, still_running, until):
        return False
    assert files.run_dir is not None
    run_dir = files.run_dir
    pid = await retry(run, files.pid, until)
    await retry(run, lambda: kill(run, pid, run_dir, why=KillReason.CANCELLED), until)
    return True
