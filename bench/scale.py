"""Fleet scale (issue 16): the raw client, the engine in-process and ONE run through the API
over N bare agents, side by side in one run, for each N asked (``make bench-scale``: 200,
2,000 and 10,000 agents when the machine has the memory for them).

Bare agents are real ``qemu-ga -m unix-listen`` processes on the HOST (control-plane load
only), standing in for guests the same way for raw and vmexec: each with a ``/var/lib/vmexec``
of its own on a tmpfs of its own (``--agent-fs``: each guest has its own file system, and this
host's disk makes creating a file cost 0.4 to 0.6 ms of CPU), at a lower priority (``--nice``:
guests on vCPUs of their own would not take the CPU from the client under test). One CPU
cgroup for the fleet (``--cpu-weight``) is an option, off by default: it helped at 200 agents
but starved 2,000 (each agent waited its turn inside the group; see bench/README.md). Each
agent runs ``--per-agent`` commands per
client: raw (half), raw under ``bash`` (half), engine, one API run of every command
(``maxConcurrency`` = the agents), raw under bash and raw (the other halves), so a change in
the machine's load hits both raw rows on both sides. Raw under bash runs the same ``echo hi``
as the engine's default shell does (issue 3), without anything of vmexec's: where the agents
share the machine's cores, what it reaches is the most any client honouring that default can.
The server's RSS is read before the agents are registered, idle after the run (per VM it ran a
command on) and at its peak during the run (per in-flight target).

    .venv/bin/python bench/scale.py --agents 200,2000,10000
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import httpx

from vmexec.hypervisor.sockets import socket_vm_uuid
from vmexec.lab.bare_agents import BareAgents, RunDirFs

from . import api, runs
from .baselines import BASH_EXEC_ARGS
from .fanout import FanoutConfig, Phase, RunOne, _Engine, _Meter, _RawClients
from .server import ApiServer, PeakSampler
from .stats import percentile

#: Memory an agent takes beyond its shared pages (PSS ~0.4 MiB here), with room for the
#: command it runs and the server's share.
AGENT_BUDGET_MIB = 1
#: Seconds after each phase for deferred work (cleanups) to be counted with it.
SETTLE = 12.0


@dataclass(frozen=True)
class Fleet:
    """How the bare agents stand in for guests (the same for raw and vmexec)."""

    nice: int
    #: One CPU cgroup for all of them, of this weight; None: none.
    cpu_weight: int | None
    fs: RunDirFs

    def __str__(self) -> str:
        cpu = (f"in one CPU cgroup of weight {self.cpu_weight}" if self.cpu_weight
               else "each on its own")
        return (f"agents at nice {self.nice}, {cpu}, each with its own /var/lib/vmexec "
                f"on {self.fs}")


@dataclass
class ScaleRow:
    agents: int
    commands: int
    raw: Phase = field(default_factory=Phase)
    #: The raw client running the command under ``bash`` (the engine's default shell): the
    #: most any client honouring that default can reach here, the engine's ceiling.
    raw_bash: Phase = field(default_factory=Phase)
    engine: Phase = field(default_factory=Phase)
    run: Phase = field(default_factory=Phase)
    #: Server RSS (KiB): before the agents were registered, idle after the run, peak in it.
    before_kib: int = 0
    after_kib: int = 0
    idle_kib: int = 0
    peak_kib: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    #: Commands of the raw client and the engine that failed, by exception.
    failed_direct: dict[str, int] = field(default_factory=dict)
    #: Agents that were not running any more at the end (none should be).
    exited: int = 0

    @property
    def per_vm_kib(self) -> float:
        return (self.after_kib - self.before_kib) / self.agents

    @property
    def per_inflight_kib(self) -> float:
        return (self.peak_kib - self.idle_kib) / self.agents


def _tolerant(one: RunOne, row: ScaleRow, client: str) -> RunOne:
    """``one``, a failure counted (by client and exception) rather than raised: at fleet
    scale a bare agent may be lost, and the other commands still say something."""
    async def counted(k: int) -> float:
        try:
            return await one(k)
        except Exception as exc:
            key = f"{client}: {type(exc).__name__}"
            row.failed_direct[key] = row.failed_direct.get(key, 0) + 1
            return math.nan
    return counted


def _drop_failed(phase: Phase) -> None:
    phase.ms = [ms for ms in phase.ms if not math.isnan(ms)]


async def _run_once(client: httpx.AsyncClient, uuids: list[str], commands: int,
                    row: ScaleRow) -> tuple[float, list[float]]:
    """One run of ``commands`` targets (the agents over and over), all agents at once;
    failed targets are counted by error code, not raised (a limit of the machine, reported)."""
    targets = [uuids[k % len(uuids)] for k in range(commands)]
    started = time.perf_counter()
    run_uuid = await runs.start(client, targets, max_concurrency=len(uuids))
    run = await runs.wait(client, run_uuid)
    seconds = time.perf_counter() - started
    for target in runs.failures(run):
        code = str(target.get("errorCode") or target.get("state"))
        row.failed[code] = row.failed.get(code, 0) + 1
    return seconds, [seconds * 1000]


async def _direct(meter: _Meter, phase: Phase, one: RunOne, count: int) -> None:
    """A client in the bench process: warmed (one command per agent), then ``count``."""
    await meter.warm(one)
    await meter.measure(phase, one, 0, count)


async def _raw_bash(meter: _Meter, row: ScaleRow, sockets: list[str], start: int,
                    count: int) -> None:
    """``count`` commands of the raw client under bash, after waiting for the agents (the
    server may still hold some after DeleteHost)."""
    raw = _RawClients(sockets, BASH_EXEC_ARGS)
    try:
        await raw.connect()
        if start == 0:
            await meter.warm(raw.one)
        await meter.measure(row.raw_bash, _tolerant(raw.one, row, "raw bash"), start, count)
    finally:
        await raw.release()


async def measure(server: ApiServer, agents: int, per_agent: int, fleet: Fleet) -> ScaleRow:
    commands = agents * per_agent
    row = ScaleRow(agents, commands)
    config = FanoutConfig(agents=agents, commands=commands, concurrency=agents, settle=SETTLE)
    limits = httpx.Limits(max_connections=32, keepalive_expiry=1.0)
    half = commands // 2
    async with (BareAgents(agents, nice=fleet.nice, cpu_weight=fleet.cpu_weight,
                           private_run_dir=True, run_dir_fs=fleet.fs) as bare,
                httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=3600,
                                  limits=limits) as client):
        sockets = [str(path) for path in bare.sockets]
        meter = _Meter(config, server.pid, [p.pid for p in bare.processes])
        raw = _RawClients(sockets)
        try:
            await _direct(meter, row.raw, _tolerant(raw.one, row, "raw"), half)
        finally:
            await raw.release()
        await _raw_bash(meter, row, sockets, 0, half)
        engine = _Engine(sockets)
        try:
            await _direct(meter, row.engine, _tolerant(engine.one, row, "engine"), commands)
        finally:
            await engine.release()
        row.before_kib = server.memory().rss_kib
        host, listed = await api.add_socket_dir_host(client, f"scale-{agents}",
                                                     bare.sockets[0].parent)
        uuids = [socket_vm_uuid(path) for path in sockets]
        if missing := set(uuids) - set(listed.values()):
            raise RuntimeError(f"{len(missing)} agent sockets not listed by QueryVmInstance")
        await _run_once(client, uuids, agents, ScaleRow(agents, agents))  # warm
        await asyncio.sleep(SETTLE)
        row.idle_kib = server.memory().rss_kib
        with PeakSampler(server.pid) as peak:
            await meter.measure_batch(row.run, lambda: _run_once(client, uuids, commands, row),
                                      commands)
        row.peak_kib = peak.peak_kib
        row.after_kib = server.memory().rss_kib
        await api.delete_host(client, host)
        await _raw_bash(meter, row, sockets, half, commands - half)
        try:
            # (An agent lost on the way is counted by the commands that fail on it.)
            await asyncio.gather(*(agent.ping(timeout=10) for agent in raw.agents),
                                 return_exceptions=True)
            await meter.measure(row.raw, _tolerant(raw.one, row, "raw"), half, commands - half)
        finally:
            await raw.release()
        row.exited = len(bare.exited())
    for phase in (row.raw, row.raw_bash, row.engine):
        _drop_failed(phase)
    return row


def _p50(phase: Phase) -> str:
    return f"{percentile(phase.ms, 50):.0f}" if phase.ms else "-"


def _cpu(phase: Phase) -> str:
    n = len(phase.ms)
    return (f"{phase.cpu_bench_ms / n:.1f} / {phase.cpu_server_ms / n:.1f} / "
            f"{phase.cpu_agents_ms / n:.1f}")


def render(rows: list[ScaleRow], fleet: Fleet) -> str:
    lines = [
        f"### Fleet scale: raw, engine and one API run over N bare agents "
        f"({fleet})",
        "",
        "| agents | commands | raw /s | raw, bash /s (x raw) | engine /s (x raw) | API run /s "
        "(x raw) | p50 ms raw / engine | CPU ms per command, bench / server / agents: raw; raw, "
        "bash; engine; run | server RSS per VM KiB | per in-flight target KiB | failed targets "
        "| agents gone |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---:|",
    ]
    for r in rows:
        raw = r.raw.rate
        failed = ", ".join(f"{n} x {code}" for code, n in Counter(
            {**r.failed_direct, **{f"run: {c}": n for c, n in r.failed.items()}}).most_common())
        failed = failed or "0"
        lines.append(
            f"| {r.agents} | {r.commands} | {raw:.0f} | {r.raw_bash.rate:.0f} "
            f"({r.raw_bash.rate / raw:.2f}) | {r.engine.rate:.0f} "
            f"({r.engine.rate / raw:.2f}) | {r.run.rate:.0f} ({r.run.rate / raw:.2f}) | "
            f"{_p50(r.raw)} / {_p50(r.engine)} | {_cpu(r.raw)}; {_cpu(r.raw_bash)}; "
            f"{_cpu(r.engine)}; {_cpu(r.run)} "
            f"| {r.per_vm_kib:.1f} | {r.per_inflight_kib:.1f} | {failed} | {r.exited} |")
    return "\n".join(lines) + "\n"


def _available_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", default="200,2000,10000",
                   help="comma-separated agent counts; a count the memory cannot hold is "
                        "skipped (and said)")
    p.add_argument("--per-agent", type=int, default=2, help="commands per agent per client")
    p.add_argument("--nice", type=int, default=10)
    p.add_argument("--cpu-weight", type=int, default=0,
                   help="put the agents in one CPU cgroup of this weight (100 = one "
                        "ordinary process); 0 (the default): none, each agent competes on its "
                        "own (at --nice)")
    p.add_argument("--agent-fs", choices=get_args(RunDirFs), default="tmpfs",
                   help="each agent's /var/lib/vmexec: a tmpfs of its own (as cheap as a "
                        "guest's file system), or a directory of the host's disk (where a "
                        "file's creation may cost far more CPU than in a guest)")
    p.add_argument("--out", type=Path, default=Path("bench/results/scale.md"))
    args = p.parse_args(argv)
    fleet = Fleet(args.nice, args.cpu_weight or None, args.agent_fs)
    rows: list[ScaleRow] = []
    notes: list[str] = []
    for agents in (int(n) for n in args.agents.split(",")):
        need = agents * AGENT_BUDGET_MIB + 2048
        if need > _available_mib():
            notes.append(f"{agents} agents skipped: they need about {need} MiB, "
                         f"{_available_mib()} MiB available")
            continue
        print(f"scale: {agents} agents ...", file=sys.stderr, flush=True)
        with ApiServer() as server:
            rows.append(asyncio.run(measure(server, agents, args.per_agent, fleet)))
    text = render(rows, fleet) + "".join(f"\n{note}\n" for note in notes)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
