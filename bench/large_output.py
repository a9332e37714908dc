"""Measure 3: a command printing 8 MiB through the API from a lab VM: time, and how much the
server's RSS grows above idle while it handles it.

``python -m bench.large_output`` runs this measure alone (on the bench's lab VM, kept running
with ``--keep-vm``) and prints its samples as JSON: the server runs the ``vmexec`` that
``PYTHONPATH`` selects, so two trees are compared in the same conditions."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import httpx

from vmexec.lab import Lab, LabVm

from . import api
from .server import ApiServer, PeakSampler, worst_growth_kib

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LargeOutputConfig:
    mib: int = 8
    repeats: int = 3
    #: The command's timeout (s): TCG guests produce and move output slowly.
    command_timeout: int = 600
    #: Seconds to wait before each repeat, so the engine's deferred cleanup (2 s) is done.
    settle: float = 2.5


@dataclass
class LargeOutputResult:
    config: LargeOutputConfig
    seconds: list[float] = field(default_factory=list)
    #: ``durationMs`` of each reply: the engine's part, inside the server.
    server_ms: list[float] = field(default_factory=list)
    idle_kib: list[int] = field(default_factory=list)
    peak_kib: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return self.config.mib * MIB

    @property
    def growth_kib(self) -> int:
        return worst_growth_kib(self.peak_kib, self.idle_kib)


def command(size: int) -> str:
    return f"head -c {size} /dev/zero | tr '\\0' a"


def measure(vm: LabVm, server: ApiServer, config: LargeOutputConfig) -> LargeOutputResult:
    """Raises when the output does not come back whole."""
    result = LargeOutputResult(config)
    size = result.size
    with httpx.Client(base_url=server.url, headers=server.auth,
                      timeout=config.command_timeout + 60) as client:
        api.exec_sync(client, vm.uuid, "echo warm")  # the server finds the VM, connects
        for _ in range(config.repeats):
            time.sleep(config.settle)
            result.idle_kib.append(server.memory().rss_kib)
            with PeakSampler(server.pid) as peak:
                started = time.perf_counter()
                _, reply = api.exec_sync(client, vm.uuid, command(size),
                                         maxOutputBytes=size,
                                         commandTimeout=config.command_timeout)
                result.seconds.append(time.perf_counter() - started)
            result.peak_kib.append(peak.peak_kib)
            stdout = reply.get("stdout", "")
            if len(stdout) != size or reply.get("stdoutTruncated") or stdout.strip("a"):
                raise RuntimeError(f"{config.mib} MiB output came back as {len(stdout)} "
                                   f"chars, truncated={reply.get('stdoutTruncated')}")
            result.server_ms.append(float(reply["durationMs"]))
            del reply, stdout
    return result


def main(argv: Sequence[str] | None = None) -> int:
    # (bench.main imports this module: its names are imported here, when run alone.)
    from .main import LAB_PREFIX, progress

    defaults = LargeOutputConfig()
    p = argparse.ArgumentParser(prog="python -m bench.large_output", description=__doc__)
    p.add_argument("--mib", type=int, default=defaults.mib)
    p.add_argument("--repeats", type=int, default=defaults.repeats)
    p.add_argument("--lab-prefix", default=LAB_PREFIX)
    p.add_argument("--keep-vm", action="store_true",
                   help="leave the bench VM running (it is removed when this started it)")
    args = p.parse_args(argv)
    lab = Lab(args.lab_prefix, progress=progress)
    running = {vm.name for vm in lab.status() if vm.state == "running"}
    vm = lab.up(1)[0]
    try:
        with ApiServer() as server:
            result = measure(vm, server, LargeOutputConfig(mib=args.mib, repeats=args.repeats))
    finally:
        if not args.keep_vm and vm.name not in running:
            lab.down(names=[vm.name])
    print(json.dumps({**asdict(result), "growth_kib": result.growth_kib,
                      "load_average": os.getloadavg(),
                      "at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
