"""Waiting for a run to end: polling the agent, following the output, watching the status
file, killing at the deadline.

The agent says "exited" once, and only when every holder of the output pipes is gone, so the
poll also reads the run's status file now and then (a background process may hold the pipes
after the command ended). Status polls start at once and back off (2 ms growing by 1.3 up to
0.25 s, counted from each reply; with more than :data:`FEW_RUNS` runs in flight never shorter
than the last round trip: when many runs share a busy machine, polls sent back to back would
be most of the work, each answered "running"), so a trivial command costs a few agent round
trips; a run that lasts gets a watchdog
in the guest, which kills it at the deadline even if vmexec is gone.

**Following the output** (:meth:`Executor.stream`). While someone watches (``watched``), the
run's output files are first read once it has run :data:`FOLLOW_AFTER` (0.2 s): a command that
ends sooner costs not one call more than an unfollowed one (its output comes with the result,
in one chunk per stream). Then they are read again :data:`OUTPUT_POLL_MIN` (50 ms) after a
read that found output (at once when a read could not take everything), and at an interval
growing by 1.5 per read that found nothing, up to :data:`OUTPUT_POLL_MAX` (0.5 s). So a chunk
reaches the caller about 50 ms (+ a few agent round trips) after it was written while output
flows, and at most 0.5 s after it after a quiet spell (and 0.2 s after the start for the
first). A read of an idle stream costs one agent call (see :mod:`.following`): a quiet command
costs 4 calls a second for its two streams on top of the status polls. Measured on a TCG lab
VM: a line every 0.1 s reaches the caller p50 53 ms / p90 86 ms after the guest wrote it;
lines 0.5-3 s apart p50 237 ms / p90 499 ms. While nobody watches, the files are read at
:data:`UNWATCHED_FOLLOW_AFTER` and every :data:`UNWATCHED_POLL` after (2 s); a reader that
comes is served at the loop's next pass.

**The first status poll** goes out so that the agent looks when the guest's recent commands
ended (learnt from when the agent found them running and then ended:
:meth:`.runs.Guest.first_poll`, at most 20 ms): a trivial command then costs one or two polls,
not three or four.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from vmexec.agent import errors as agent_errors
from vmexec.agent.client import ExecStatus
from vmexec.execution.faults import CALL_TIMEOUT
from vmexec.execution.following import OutputFollower
from vmexec.execution.guest_helpers import KILL_WAIT, kill, start_helper
from vmexec.execution.guestfiles import RunFiles
from vmexec.execution.models import OutputChunk
from vmexec.execution.runs import Run, wait_for_agent
from vmexec.execution.status import Status

#: Status polls: first at once, then at a growing interval up to POLL_MAX seconds.
POLL_START, POLL_GROWTH, POLL_MAX = 0.002, 1.3, 0.25
#: Up to this many runs in flight in the engine, status polls are not spaced by the round trip.
FEW_RUNS = 4
#: A run still going after WATCHDOG_SHARE of its timeout, but at least WATCHDOG_AFTER and at
#: most WATCHDOG_AFTER_MAX seconds, gets a watchdog in the guest (two processes: as much as a
#: trivial command). It matters only if vmexec is gone for good before the deadline (a
#: restarted vmexec recovers the run and kills it on time), so it need not come early: a
#: fixed 2 s gave every run a watchdog once a busy machine made trivial commands take 2 s,
#: and the watchdogs made it busier.
WATCHDOG_AFTER, WATCHDOG_SHARE, WATCHDOG_AFTER_MAX = 2.0, 0.1, 30.0
#: How often a long poll also looks at the run's status file (seconds).
HOLDER_CHECK = 1.0
#: Output is first read once a followed run has lasted this long (seconds).
FOLLOW_AFTER = 0.2
#: Output reads: this long after one that found output, growing by OUTPUT_POLL_GROWTH per
#: read that found none, up to OUTPUT_POLL_MAX (seconds).
OUTPUT_POLL_MIN, OUTPUT_POLL_GROWTH, OUTPUT_POLL_MAX = 0.05, 1.5, 0.5
#: While nobody reads a followed run's output (no live reader here), its files are read first
#: after UNWATCHED_FOLLOW_AFTER and then every UNWATCHED_POLL seconds: a fleet's commands
#: mostly end sooner and cost no read at all; the output so far still reaches the database
#: (a reader elsewhere, a GET of the execution) a few seconds behind the guest.
UNWATCHED_FOLLOW_AFTER = UNWATCHED_POLL = 2.0


def next_status_poll(sent: float, replied: float, delay: float, in_flight: int) -> float:
    """When to send the next status poll after one (``sent``, ``replied``: loop times) found
    the run running, ``delay`` being the current interval and ``in_flight`` the runs the
    engine follows now. From the reply; while more than :data:`FEW_RUNS` runs share the
    machine, no sooner than a round trip: polls sent back to back (and round trips grow
    under load) would be most of the engine's work, and each tells only "running". A few
    runs poll at their own pace, as a raw client does: a slow guest's round trip would
    otherwise add itself to every command's latency on an idle machine."""
    if in_flight <= FEW_RUNS:
        return replied + delay
    return replied + max(delay, replied - sent)


async def wait_for_end(run: Run, files: RunFiles, deadline: float,
                       follower: OutputFollower | None
                       ) -> AsyncIterator[OutputChunk | ExecStatus | Status]:
    """Poll until the agent reports the run exited (yielding that reply, which the agent
    gives only once), or its status file shows it ended (yielding that status), or the
    reply is known lost (yielding nothing more); kill the run at the deadline. With a
    ``follower``, output chunks are yielded as they appear. Transient faults are waited out
    until the deadline and the kill's own wait have passed."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    delay = POLL_START
    # The first poll when the guest's recent commands ended (Guest.first_poll).
    status_at = began + run.guest.first_poll()
    #: When the agent last found the run running (seconds from began, the middle of the poll).
    running_at: float | None = None
    watching = follower is not None and follower.watched()
    output_at = began + (FOLLOW_AFTER if watching else UNWATCHED_FOLLOW_AFTER)
    output_delay = OUTPUT_POLL_MIN
    timeout = run.request.timeout
    watchdog_at = began + min(timeout, max(WATCHDOG_AFTER,
                                           min(WATCHDOG_SHARE * timeout, WATCHDOG_AFTER_MAX)))
    holder_check = began + HOLDER_CHECK
    until = deadline + KILL_WAIT
    while True:
        now = loop.time()
        if now >= status_at:
            try:
                reply = await run.agent.exec_status(run.pid, timeout=CALL_TIMEOUT)
            except agent_errors.AgentCommandDisabled:
                raise
            except agent_errors.AgentCommandError:
                run.ended = True
                return  # the agent forgot the pid: its exited reply went astray
            except agent_errors.AgentError as exc:
                await wait_for_agent(run, exc, until)
                continue
            replied = loop.time()
            run.guest.polled(now, replied)
            looked_at = (now + replied) / 2 - began
            if reply.exited:
                run.ended = True
                run.guest.ended(running_at, looked_at)
                yield reply
                return
            running_at = looked_at
            status_at = next_status_poll(now, replied, delay, run.in_flight())
            delay = min(delay * POLL_GROWTH, POLL_MAX)
        chunks: list[OutputChunk] = []
        status: Status | None = None
        try:
            if follower is not None and follower.watched() != watching:
                watching = not watching
                if watching:  # a reader came: read now (from FOLLOW_AFTER on)
                    output_at = min(output_at, max(now, began + FOLLOW_AFTER))
                    output_delay = OUTPUT_POLL_MIN
            if follower is not None and now >= output_at:
                chunks = await follower.poll()
                if follower.more:
                    output_delay = 0.0
                elif not watching:
                    output_delay = UNWATCHED_POLL
                elif chunks:
                    output_delay = OUTPUT_POLL_MIN
                else:
                    output_delay = min(max(output_delay, OUTPUT_POLL_MIN) * OUTPUT_POLL_GROWTH,
                                       OUTPUT_POLL_MAX)
                output_at = loop.time() + output_delay
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
            run.ended = True
            yield status
            return
        if run.killed and now >= until:
            run.ended = True
            return
        wake_at = status_at if run.killed else min(status_at, max(deadline, now + 0.001))
        if follower is not None:
            wake_at = min(wake_at, output_at)
        if await run.nap(max(0.0, wake_at - loop.time())):
            status_at, delay = loop.time(), POLL_START  # e.g. a cancel killed it: look now
