"""What the numbers were measured on: date, CPUs, accelerator, load, vmexec commit."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Machine:
    date: str
    nproc: int
    cpu: str
    #: "KVM" or "TCG" (software emulation), as the lab VM runs.
    accel: str
    kernel: str
    #: 1/5/15-minute load averages when the run started (others share this machine).
    load: str
    commit: str

    def line(self) -> str:
        return (f"{self.date} · {self.nproc} CPU ({self.cpu}) · guests under {self.accel} · "
                f"Linux {self.kernel} · load {self.load} at start · vmexec {self.commit}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip()


def describe(accel: str) -> Machine:
    """``accel``: the lab VM's accelerator ("kvm" or "tcg")."""
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return Machine(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                   nproc=os.cpu_count() or 0, cpu=_cpu_model(), accel=accel.upper(),
                   kernel=platform.release(), load=load, commit=_commit())
