"""Throughput of runs over 600 bare agents with 1, 2 and 3 ``vmexec serve`` nodes on one
PostgreSQL database (issue 12), side by side in one invocation.

    .venv/bin/python -m bench.nodes [--agents 600] [--hosts 6] [--per-agent 4]
                                    [--phases 1,2,3,3,2,1]

Set-up: a throwaway PostgreSQL cluster (tests/fixtures/postgres.py), ``--agents`` bare agents
(real ``qemu-ga -m unix-listen`` processes ON THE HOST: control-plane load only, at a lower
priority as guests on vCPUs of their own would be) in ``--hosts`` agent-socket directories,
each registered as a host, and up to 3 nodes (real ``vmexec serve`` processes, tests/fixtures/
nodes.py), which share the hosts out (``vmexec_hosts_owned``).

How the work spreads: a run is carried out by the node that accepted it (a peer takes it over
only if that node dies), so one run of 600 targets uses one node however many run. With N
nodes the client (as a load balancer's clients would) starts N runs at once, one per node,
each over its own 600/N agents, ``--per-agent`` commands per agent (``maxConcurrency``
``--concurrency`` / N each: every phase has as many commands in flight). Each phase has exactly
N nodes alive (nodes are started and stopped cleanly between phases, the hosts re-shared before
it starts); an agent that died is left out of the phases after. The phases go up and down
(1, 2, 3, 3, 2, 1) so that a drift of the shared machine's load hits every N alike.

Per N: commands/s (all the phase's commands over the wall time from the first run's start to
the last run's end) and its ratio to 1 node; CPU per command of each node, of PostgreSQL (its
processes) and of the agents (with the commands they ran); and how busy the whole machine was,
in cores (from /proc/stat, other sessions included): at the machine's core count it is
CPU-bound.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import httpx

from vmexec.hypervisor.sockets import socket_vm_uuid
from vmexec.lab.bare_agents import BareAgents, RunDirFs

from . import api, runs
from .baselines import COMMAND
from .cpu import cpu_ms, total_cpu_ms

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.nodes import Node, start_node
from fixtures.postgres import PostgresServer, _bin_dir

#: Seconds without any agent call on every node before a phase: more than an agent socket's
#: idle close (10 s; a socket serves one client at a time), so a node has let go of the sockets
#: it used (the commands' deferred clean-ups included) before another node uses them.
QUIET = 12.0
#: Seconds that wait lasts at most: an agent that died (refused) has its clean-up retried.
QUIET_MAX = 45.0
#: Seconds of a host lease: short, so the hosts are re-shared quickly between phases.
HOST_LEASE = 6.0
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Phase:
    nodes: int
    commands: int = 0
    seconds: float = 0.0
    #: CPU ms of each node over the phase, and the commands it ran.
    node_cpu_ms: list[float] = field(default_factory=list)
    node_commands: list[int] = field(default_factory=list)
    postgres_cpu_ms: float = 0.0
    agents_cpu_ms: float = 0.0
    #: CPU-seconds the whole machine spent (every process) over the wall seconds.
    busy_cores: float = 0.0
    #: Seconds until the hosts were shared out among the phase's nodes.
    reshare_seconds: float = 0.0
    #: The error codes of the targets that failed.
    failed: list[str] = field(default_factory=list)


def _machine_busy_ticks() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal: all but idle and iowait.
    return sum(fields[:8]) - fields[3] - fields[4]


def _postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cpu_by_pid(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        try:
            found[pid] = cpu_ms(pid, children=False)
        except OSError:
            pass
    return found


def _cpu_since(before: dict[int, float]) -> float:
    """CPU ms spent since ``before`` by PostgreSQL's processes: those still there, and new
    ones in full (a backend that exited meanwhile is not counted: its share is lost)."""
    after = _cpu_by_pid(_postgres_pids())
    return sum(ms - before.get(pid, 0.0) for pid, ms in after.items())


class Fleet:
    """The nodes of the bench: ``ensure(n)`` leaves exactly nodes 1..n running."""

    def __init__(self, db: str, log_dir: Path, hosts: int) -> None:
        self.db = db
        self.log_dir = log_dir
        self.hosts = hosts
        self.running: list[Node] = []

    def _start(self, index: int) -> Node:
        node = start_node(self.db, f"node-{index + 1}", self.log_dir,
                          host_lease=HOST_LEASE)
        node.login()
        return node

    def ensure(self, count: int, *, shared: bool = True) -> float:
        """Start or stop nodes until ``count`` run; returns the seconds until the hosts were
        shared out among them (each node at most its share, every host owned; not waited
        for without ``shared``: no host is registered yet)."""
        while len(self.running) > count:
            self.running.pop().stop()  # SIGTERM: its hosts released at once
        while len(self.running) < count:
            self.running.append(self._start(len(self.running)))
        started = time.monotonic()
        deadline = started + 120
        while shared and not self._shared_out():
            if time.monotonic() > deadline:
                raise SystemExit(f"the hosts were not shared out among {count} nodes")
            time.sleep(0.2)
        return time.monotonic() - started

    def _shared_out(self) -> bool:
        owned = [node.metric("vmexec_hosts_owned") for node in self.running]
        live = [node.metric("vmexec_nodes_live") for node in self.running]
        share = math.ceil(self.hosts / len(self.running))
        return (sum(owned) == self.hosts and max(owned) <= share
                and live == [len(self.running)] * len(self.running))

    def agent_calls(self) -> float:
        """Agent calls made so far by the running nodes."""
        total = 0.0
        for node in self.running:
            text = httpx.get(f"{node.url}/metrics", timeout=30).text
            total += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                         if line.startswith("vmexec_agent_calls_total"))
        return total

    def quiet(self) -> None:
        """Wait until no node made an agent call for :data:`QUIET` seconds (at most
        :data:`QUIET_MAX`)."""
        calls, since = self.agent_calls(), time.monotonic()
        deadline = since + QUIET_MAX
        while time.monotonic() - since < QUIET and time.monotonic() < deadline:
            time.sleep(1)
            now = self.agent_calls()
            if now != calls:
                calls, since = now, time.monotonic()

    def stop(self) -> None:
        for node in reversed(self.running):
            node.stop()
        self.running = []


async def _one_run(node: Node, vms: list[str], per_agent: int,
                   concurrency: int) -> list[str]:
    """One run on ``node``; returns the error codes of its targets that failed (a bare
    agent may die under this load: counted, not fatal)."""
    headers = {"Authorization": f"OAuth {node.session}"}
    targets = [vm for _ in range(per_agent) for vm in vms]
    async with httpx.AsyncClient(base_url=node.url, headers=headers, timeout=600) as client:
        run_uuid = await runs.start(client, targets, max_concurrency=concurrency)
        run = await runs.wait(client, run_uuid)
    if len(run.get("targets") or []) != len(targets):
        raise api.ApiCallError(f"run {run_uuid}: {len(run.get('targets') or [])} targets of "
                               f"{len(targets)}")
    return [str(t.get("errorCode") or t.get("state")) for t in runs.failures(run)]


async def measure(fleet: Fleet, vms: list[str], per_agent: int, agent_pids: list[int],
                  count: int, concurrency: int) -> Phase:
    phase = Phase(nodes=count)
    phase.reshare_seconds = await asyncio.to_thread(fleet.ensure, count)
    nodes = list(fleet.running)
    size = math.ceil(len(vms) / count)
    slices = [vms[k * size:(k + 1) * size] for k in range(count)]
    pg = _cpu_by_pid(_postgres_pids())
    before = ([cpu_ms(n.pid, children=False) for n in nodes], 0.0,
              total_cpu_ms(agent_pids), _machine_busy_ticks())
    started = time.perf_counter()
    each = math.ceil(concurrency / count)
    failed = await asyncio.gather(*(_one_run(node, part, per_agent, each)
                                    for node, part in zip(nodes, slices, strict=True)))
    phase.failed = [code for codes in failed for code in codes]
    phase.seconds = time.perf_counter() - started
    after = ([cpu_ms(n.pid, children=False) for n in nodes], _cpu_since(pg),
             total_cpu_ms(agent_pids), _machine_busy_ticks())
    phase.node_cpu_ms = [b - a for a, b in zip(before[0], after[0], strict=True)]
    phase.node_commands = [len(part) * per_agent for part in slices]
    phase.commands = sum(phase.node_commands)
    phase.postgres_cpu_ms = after[1] - before[1]
    phase.agents_cpu_ms = after[2] - before[2]
    phase.busy_cores = (after[3] - before[3]) / _TICK / phase.seconds
    return phase


def render(phases: list[Phase], agents: int, hosts: int, per_agent: int, concurrency: int,
           started: str, load: float) -> str:
    by_n: dict[int, list[Phase]] = {}
    for phase in phases:
        by_n.setdefault(phase.nodes, []).append(phase)

    def rate(group: list[Phase]) -> float:
        return sum(p.commands for p in group) / sum(p.seconds for p in group)

    base = rate(by_n[1]) if 1 in by_n else math.nan
    lines = [
        f"Runs of `{COMMAND}` over {agents} bare agents in {hosts} agent-socket-directory "
        f"hosts, {per_agent} commands per agent per phase; N nodes = N runs at once, one per "
        f"node, each over {agents}/N agents, {concurrency} in flight in all; "
        f"{os.cpu_count()} cores; "
        f"started {started}, load average then {load:.1f} (1 min)",
        "",
        "| nodes | phases | commands/s (each phase) | commands/s | vs 1 node | CPU ms/command "
        "per node | nodes' CPU ms/command | PostgreSQL ms/command | agents ms/command | "
        "machine busy (cores) | hosts re-shared in (s) | targets failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in sorted(by_n):
        group = by_n[n]
        commands = sum(p.commands for p in group)
        per_node = [sum(p.node_cpu_ms[k] for p in group) / sum(p.node_commands[k] for p in group)
                    for k in range(n)]
        nodes_total = sum(sum(p.node_cpu_ms) for p in group) / commands
        lines.append(
            f"| {n} | {len(group)} | {', '.join(f'{p.commands / p.seconds:.0f}' for p in group)} "
            f"| **{rate(group):.0f}** | {rate(group) / base:.2f}x | "
            f"{' / '.join(f'{c:.1f}' for c in per_node)} | {nodes_total:.1f} | "
            f"{sum(p.postgres_cpu_ms for p in group) / commands:.1f} | "
            f"{sum(p.agents_cpu_ms for p in group) / commands:.1f} | "
            f"{statistics.mean(p.busy_cores for p in group):.2f} | "
            f"{', '.join(f'{p.reshare_seconds:.1f}' for p in group)} | "
            f"{_failures(group)} |")
    return "\n".join(lines) + "\n"


def _failures(group: list[Phase]) -> str:
    codes = Counter(code for phase in group for code in phase.failed)
    return ", ".join(f"{n} {code}" for code, n in codes.most_common()) or "0"


@contextmanager
def _postgres(work: Path) -> Iterator[str]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed (scripts/bootstrap.sh)")
    (work / "pg").mkdir()
    server = PostgresServer(bin_dir, work / "pg")
    server.start()
    try:
        yield server.create_database()
    finally:
        server.stop()


async def main_async(args: argparse.Namespace, db: str, work: Path) -> str:
    phases_n = [int(x) for x in args.phases.split(",")]
    load = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    fleet = Fleet(db, work, args.hosts)
    try:
        async with AsyncExitStack() as stack:
            groups = [await stack.enter_async_context(
                BareAgents(args.agents // args.hosts, nice=args.nice,
                           private_run_dir=True, run_dir_fs=args.agent_fs))
                for _ in range(args.hosts)]
            print(f"{args.agents} agents up", file=sys.stderr, flush=True)
            await asyncio.to_thread(fleet.ensure, 1, shared=False)
            first = fleet.running[0]
            headers = {"Authorization": f"OAuth {first.session}"}
            async with httpx.AsyncClient(base_url=first.url, headers=headers,
                                         timeout=600) as client:
                for k, group in enumerate(groups):
                    await api.add_socket_dir_host(client, f"agents-{k}",
                                                  group.sockets[0].parent)
            pids = [p.pid for group in groups for p in group.processes]
            phases = []
            for n in phases_n:
                await asyncio.to_thread(fleet.quiet)
                # An agent that died (it happens under this load) is left out from then on.
                vms = [socket_vm_uuid(str(sock)) for group in groups
                       for i, sock in enumerate(group.sockets)
                       if group.processes[i].poll() is None]
                phase = await measure(fleet, vms, args.per_agent, pids, n, args.concurrency)
                print(f"{n} nodes: {phase.commands} commands in {phase.seconds:.1f} s "
                      f"({phase.commands / phase.seconds:.0f}/s, {len(phase.failed)} failed), "
                      f"machine busy {phase.busy_cores:.2f} cores", file=sys.stderr, flush=True)
                phases.append(phase)
            exited = sum(len(group.exited()) for group in groups)
    finally:
        await asyncio.to_thread(fleet.stop)
    return (render(phases, args.agents, args.hosts, args.per_agent, args.concurrency, started,
                   load)
            + f"\nBare agents that exited during the bench: {exited}.\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.nodes",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=600)
    parser.add_argument("--hosts", type=int, default=6,
                        help="agent-socket directories the agents are split into")
    parser.add_argument("--per-agent", type=int, default=4,
                        help="commands per agent in each phase")
    parser.add_argument("--phases", default="1,2,3,3,2,1",
                        help="node counts of the phases, in order (1 to 3)")
    parser.add_argument("--concurrency", type=int, default=200,
                        help="targets in flight in all, split among the phase's runs")
    parser.add_argument("--nice", type=int, default=10)
    parser.add_argument("--agent-fs", choices=get_args(RunDirFs), default="tmpfs",
                        help="each agent's /var/lib/vmexec: a tmpfs of its own, or the host's "
                             "disk (see bench/scale.py)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/nodes.md"))
    args = parser.parse_args()
    if args.agents % args.hosts:
        raise SystemExit("--agents must be a multiple of --hosts")
    work = Path(tempfile.mkdtemp(prefix="vmexec-bench-nodes-"))
    work.chmod(0o755)  # PostgreSQL runs as its own user and must reach its directory
    with _postgres(work) as db:
        table = asyncio.run(main_async(args, db, work))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
