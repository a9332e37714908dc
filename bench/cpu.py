"""CPU time of processes, from ``/proc/<pid>/stat`` (Linux), in milliseconds."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int | str = "self", *, children: bool = True) -> float:
    """User + system CPU of ``pid``; with ``children``, plus that of the children it has
    reaped (for an agent: the processes it started). Raises OSError when it is gone."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after "pid (comm)"; comm may contain spaces and parentheses.
    fields = stat[stat.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    ticks = utime + stime + (cutime + cstime if children else 0)
    return ticks * _TICK_MS


def total_cpu_ms(pids: Iterable[int]) -> float:
    """The sum of :func:`cpu_ms` (with children) over ``pids``; a gone process counts 0."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_ms(pid)
        except OSError:
            pass
    return total
