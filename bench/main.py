"""Run every measure and print the table: ``python bench/run.py [options]`` (``make bench``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vmexec.lab import Lab, LabVm

from . import fanout, files, large_output, latency, live_output
from .machine import REPO, describe
from .report import Report, render
from .server import ApiServer

RESULTS = REPO / "bench" / "results"
LAB_PREFIX = "vmexec-bench"


@dataclass(frozen=True, slots=True)
class BenchConfig:
    latency: latency.LatencyConfig = field(default_factory=latency.LatencyConfig)
    fanout: fanout.FanoutConfig = field(default_factory=fanout.FanoutConfig)
    large: large_output.LargeOutputConfig = field(
        default_factory=large_output.LargeOutputConfig)
    live: live_output.LiveConfig = field(default_factory=live_output.LiveConfig)
    files: files.FilesConfig = field(default_factory=files.FilesConfig)


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run_all(config: BenchConfig, vm: LabVm) -> Report:
    """Every measure, each against a fresh ``vmexec serve`` (so each starts from an idle
    server's memory). Raises when any method gives a wrong result."""
    started = time.monotonic()
    machine = describe(vm.accel)
    progress(f"latency on {vm.name} ({config.latency.iterations} rounds)")
    with ApiServer() as server:
        lat = asyncio.run(latency.measure(vm, server, config.latency))
    progress(f"large output ({config.large.mib} MiB x {config.large.repeats}) "
             f"[{time.monotonic() - started:.0f} s]")
    with ApiServer() as server:
        large = large_output.measure(vm, server, config.large)
    progress(f"fan-out ({config.fanout.commands} commands, {config.fanout.agents} agents) "
             f"[{time.monotonic() - started:.0f} s]")
    with ApiServer() as server:
        fan = asyncio.run(fanout.measure(server, config.fanout))
    progress(f"live output, and a run over {config.live.agents} agents "
             f"[{time.monotonic() - started:.0f} s]")
    with ApiServer() as server:
        followed = asyncio.run(live_output.measure(server, config.live))
    progress(f"files ({config.files.mib} MiB x {config.files.repeats}, both ways) "
             f"[{time.monotonic() - started:.0f} s]")
    with ApiServer() as server:
        copied = files.measure(vm, server, config.files)
    progress(f"done [{time.monotonic() - started:.0f} s]")
    return Report(machine, time.monotonic() - started, lat, fan, large, followed, copied)


def write_results(report: Report, out: Path) -> str:
    """Write the table to ``out`` (markdown) and the raw samples next to it (``.json``)."""
    table = render(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(table)
    out.with_suffix(".json").write_text(json.dumps(asdict(report), indent=1) + "\n")
    return table


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__)
    lat, fan, big = latency.LatencyConfig(), fanout.FanoutConfig(), \
        large_output.LargeOutputConfig()
    p.add_argument("--iterations", type=int, default=lat.iterations,
                   help="latency rounds (each runs every method once)")
    p.add_argument("--polling-iterations", type=int, default=lat.polling_iterations,
                   help="rounds that include the 1 s polling rule (c)")
    p.add_argument("--warmup", type=int, default=lat.warmup)
    p.add_argument("--traced", type=int, default=lat.traced,
                   help="extra runs with every agent call logged")
    p.add_argument("--agents", type=int, default=fan.agents)
    p.add_argument("--commands", type=int, default=fan.commands)
    p.add_argument("--concurrency", type=int, default=fan.concurrency)
    p.add_argument("--run-agents", type=int, default=live_output.LiveConfig().agents,
                   help="bare agents of the one run whose memory is measured (about 3 MB each)")
    p.add_argument("--live-lines", type=int, default=live_output.LiveConfig().lines)
    p.add_argument("--output-mib", type=int, default=big.mib)
    p.add_argument("--output-repeats", type=int, default=big.repeats)
    p.add_argument("--files-mib", type=int, default=files.FilesConfig().mib,
                   help="file size both ways (the lab VMs' RAM root holds about 100 MiB)")
    p.add_argument("--files-repeats", type=int, default=files.FilesConfig().repeats)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--lab-prefix", default=LAB_PREFIX,
                   help="lab instance whose VM 1 is used (its own, not the tests' VMs)")
    p.add_argument("--keep-vm", action="store_true",
                   help="leave the bench VM running (it is removed when the bench started it)")
    p.add_argument("--out", type=Path, default=RESULTS / "latest.md")
    return p


def config_from(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        latency=latency.LatencyConfig(iterations=args.iterations,
                                      polling_iterations=args.polling_iterations,
                                      warmup=args.warmup, traced=args.traced, seed=args.seed),
        fanout=fanout.FanoutConfig(agents=args.agents, commands=args.commands,
                                   concurrency=args.concurrency),
        large=large_output.LargeOutputConfig(mib=args.output_mib,
                                             repeats=args.output_repeats),
        live=live_output.LiveConfig(lines=args.live_lines, agents=args.run_agents),
        files=files.FilesConfig(mib=args.files_mib, repeats=args.files_repeats))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    lab = Lab(args.lab_prefix, progress=progress)
    running = {vm.name for vm in lab.status() if vm.state == "running"}
    vm = lab.up(1)[0]
    try:
        report = run_all(config_from(args), vm)
    finally:
        if not args.keep_vm and vm.name not in running:
            lab.down(names=[vm.name])
    print(write_results(report, args.out))
    progress(f"written to {args.out}")
    return 0
