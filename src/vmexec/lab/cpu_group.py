"""A CPU cgroup of its own for a fleet of bare agents, so that the fleet competes for the CPU
as ONE entity, not as thousands of processes.

Guests run on vCPUs of their own and never take the CPU from the control plane that drives
them. Bare agents on the host do, and per-process priority cannot stop it: the scheduler
weighs each runnable process, so 200 agents' shells at nice 10 (weight 110 each) outweigh a
nice-0 server (1024) twenty to one. In a cgroup the whole fleet has one weight.

Both cgroup layouts are handled here: v2 (``cpu.weight``, 1 to 10,000, 100 the default) and
v1's ``cpu`` hierarchy (``cpu.shares``, 1,024 the default).
"""

from __future__ import annotations

import os
from pathlib import Path

#: Where each layout keeps the cpu controller's groups, and its weight file.
_V2_ROOT = Path("/sys/fs/cgroup")
_V1_ROOT = Path("/sys/fs/cgroup/cpu")


class CpuGroupError(RuntimeError):
    """No writable cpu controller on this host (not root, or no cgroup cpu controller)."""


class CpuGroup:
    """A cgroup with ``weight`` (cgroup v2 units: 100 = one ordinary process's share)."""

    def __init__(self, name: str, weight: int) -> None:
        if not 1 <= weight <= 10_000:
            raise ValueError(f"weight must be 1 to 10000, not {weight}")
        if (_V2_ROOT / "cgroup.subtree_control").exists():
            if "cpu" not in (_V2_ROOT / "cgroup.subtree_control").read_text().split():
                raise CpuGroupError("cgroup v2 without the cpu controller enabled at the root")
            self.path, knob, value = _V2_ROOT / name, "cpu.weight", weight
        elif (_V1_ROOT / "cpu.shares").exists():
            self.path, knob, value = _V1_ROOT / name, "cpu.shares", max(2, weight * 1024 // 100)
        else:
            raise CpuGroupError("no cgroup cpu controller on this host")
        try:
            self.path.mkdir()
            (self.path / knob).write_text(str(value))
        except OSError as exc:
            self.remove()
            raise CpuGroupError(f"cannot make the cgroup {self.path}: {exc}") from exc
        self._procs = str(self.path / "cgroup.procs")

    def join(self) -> None:
        """Move the calling process into the group (in a child between fork and exec: what
        it runs from then on stays in the group)."""
        fd = os.open(self._procs, os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)

    def remove(self) -> None:
        """Remove the group (it must be empty: its processes gone); best effort."""
        try:
            self.path.rmdir()
        except OSError:
            pass
