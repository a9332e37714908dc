"""Measure 2: many trivial commands at a high concurrency over bare agents (real ``qemu-ga``
processes on unix sockets, on the host: control-plane load only), in the same run through:

* **raw** — a raw asyncio client (vmexec's unix-socket transport + typed agent client only);
* **engine** — the vmexec engine in the bench process (``Executor.run``), to split the API's
  cost from the engine's;
* **API** — the vmexec HTTP API (sync PUT ExecuteGuestVmCommand) against ``vmexec serve``;
* **API run** — the same commands as one run (:mod:`.runs`): one request, ``commands``
  targets, each agent a target ``commands / agents`` times.

An agent socket serves one client at a time (as a QEMU chardev does), so the clients take
turns: raw (half the commands), engine, API (then DeleteHost so the server lets go of the
sockets), raw (the other half), so a change in the machine's load hits raw on both sides.
Each phase also records the CPU time it cost in the bench process, the server and the agents
(qemu-ga plus the processes it ran): on a small machine that is what bounds throughput.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vmexec.agent.client import GuestAgent
from vmexec.agent.directory import AgentDirectory
from vmexec.agent.errors import AgentError
from vmexec.agent.targets import SocketTarget
from vmexec.agent.transport.unix import UnixSocketTransport
from vmexec.execution.engine import CLEANUP_DELAY, Executor
from vmexec.execution.models import ExecRequest
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.hypervisor.sockets import socket_vm_uuid
from vmexec.lab.bare_agents import BareAgents

from . import api, runs
from .baselines import COMMAND, EXEC_ARGS, EXPECTED, socket_exec
from .cpu import cpu_ms, total_cpu_ms
from .server import ApiServer, PeakSampler

RunOne = Callable[[int], Awaitable[float]]
#: Runs a whole phase at once: wall seconds and each batch's ms.
Batch = Callable[[], Awaitable[tuple[float, list[float]]]]


@dataclass(frozen=True, slots=True)
class FanoutConfig:
    agents: int = 200
    commands: int = 2000
    concurrency: int = 200
    #: Seconds after each phase for the engine's deferred cleanup (2 s after runs) to be done.
    settle: float = 3.0


@dataclass
class Phase:
    """One client's commands: wall seconds, per-command ms, CPU ms spent per process kind."""

    seconds: float = 0.0
    ms: list[float] = field(default_factory=list)
    cpu_bench_ms: float = 0.0
    cpu_server_ms: float = 0.0
    cpu_agents_ms: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.ms) / self.seconds

    def per_command(self, cpu: float) -> float:
        return cpu / len(self.ms)


@dataclass
class FanoutResult:
    config: FanoutConfig
    raw: Phase = field(default_factory=Phase)
    engine: Phase = field(default_factory=Phase)
    api: Phase = field(default_factory=Phase)
    #: Runs: each command's ``ms`` is its run's duration (a run's results come together).
    run: Phase = field(default_factory=Phase)
    #: Server RSS (KiB): after start, idle after the warm-up, peak while the API ran.
    start_kib: int = 0
    idle_kib: int = 0
    peak_kib: int = 0

    @property
    def per_inflight_kib(self) -> float:
        return (self.peak_kib - self.idle_kib) / self.config.concurrency


async def _run(run_one: RunOne, start: int, count: int,
               concurrency: int) -> tuple[float, list[float]]:
    """Commands ``start .. start+count-1``, ``concurrency`` workers each taking every
    concurrency-th; returns the wall seconds and each command's ms."""
    samples: list[float] = []

    async def worker(w: int) -> None:
        for k in range(start + w, start + count, concurrency):
            samples.append(await run_one(k))

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return time.perf_counter() - started, samples


class _Meter:
    """Runs phases, adding their wall time, samples and CPU to a :class:`Phase`."""

    def __init__(self, config: FanoutConfig, server_pid: int, agent_pids: list[int]) -> None:
        self.config = config
        self.server_pid = server_pid
        self.agent_pids = agent_pids

    def _cpu(self) -> tuple[float, float, float]:
        return (cpu_ms("self", children=False), cpu_ms(self.server_pid, children=False),
                total_cpu_ms(self.agent_pids))

    async def measure(self, phase: Phase, run_one: RunOne, start: int, count: int) -> None:
        before = self._cpu()
        seconds, samples = await _run(run_one, start, count, self.config.concurrency)
        # Work the run left behind (the engine's deferred cleanup) is part of its cost.
        await asyncio.sleep(self.config.settle)
        bench, server, agents = (b - a for a, b in zip(before, self._cpu(), strict=True))
        phase.seconds += seconds
        phase.ms += samples
        phase.cpu_bench_ms += bench
        phase.cpu_server_ms += server
        phase.cpu_agents_ms += agents

    async def measure_batch(self, phase: Phase, batch: Batch, count: int) -> None:
        """Like :meth:`measure` for a client that runs ``count`` commands in one call."""
        before = self._cpu()
        seconds, run_ms = await batch()
        await asyncio.sleep(self.config.settle)
        bench, server, agents = (b - a for a, b in zip(before, self._cpu(), strict=True))
        phase.seconds += seconds
        per_run = count // len(run_ms)
        phase.ms += [ms for ms in run_ms for _ in range(per_run)]
        phase.cpu_bench_ms += bench
        phase.cpu_server_ms += server
        phase.cpu_agents_ms += agents

    async def warm(self, run_one: RunOne) -> None:
        """One command per agent (connections, agent sync, caches)."""
        await _run(run_one, 0, self.config.agents, self.config.concurrency)


#: Seconds the raw client keeps trying an agent the server may still hold after DeleteHost.
RECONNECT_WITHIN = 30.0


class _RawClients:
    """The raw client: one :class:`GuestAgent` on vmexec's unix-socket transport per agent."""

    def __init__(self, sockets: list[str], exec_args: dict[str, Any] = EXEC_ARGS) -> None:
        self.agents = [GuestAgent(UnixSocketTransport(path)) for path in sockets]
        self.exec_args = exec_args

    async def one(self, k: int) -> float:
        return await socket_exec(self.agents[k % len(self.agents)], self.exec_args)

    async def connect(self, within: float = RECONNECT_WITHIN) -> None:
        """Ping every agent, retrying one that another client still holds (an agent socket
        serves one client at a time: the server lets go of it when its last call, e.g. a
        cleanup up to CLEANUP_INTERVAL after the runs, is done) for ``within`` seconds."""
        await asyncio.gather(*(self._reach(agent, within) for agent in self.agents))

    @staticmethod
    async def _reach(agent: GuestAgent, within: float) -> None:
        deadline = time.monotonic() + within
        while True:
            try:
                await agent.ping(timeout=10)
                return
            except AgentError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def release(self) -> None:
        for agent in self.agents:
            await agent.aclose()


class _Engine:
    """The vmexec engine in this process, one :class:`SocketTarget` per agent."""

    def __init__(self, sockets: list[str]) -> None:
        self.hosts = LibvirtHosts()
        self.agents = AgentDirectory(self.hosts)
        self.executor = Executor(self.agents)
        self.targets = [SocketTarget(path) for path in sockets]

    async def one(self, k: int) -> float:
        started = time.perf_counter()
        result = await self.executor.run(self.targets[k % len(self.targets)],
                                         ExecRequest(COMMAND))
        elapsed = (time.perf_counter() - started) * 1000
        if result.exit_code != 0 or result.stdout.data != EXPECTED:
            raise RuntimeError(f"engine: unexpected result {result!r}")
        return elapsed

    async def release(self) -> None:
        await self.executor.aclose()
        await self.agents.aclose()
        self.hosts.close()


async def measure(server: ApiServer, config: FanoutConfig) -> FanoutResult:
    """Raises on any wrong result (every command must print ``hi``)."""
    result = FanoutResult(config, start_kib=server.memory().rss_kib)
    # Idle connections expire in the client well before uvicorn's 5 s keep-alive timeout:
    # reusing one the server is closing at that moment fails the request (a client race).
    limits = httpx.Limits(max_connections=config.concurrency,
                          max_keepalive_connections=config.concurrency, keepalive_expiry=1.0)
    half = config.commands // 2
    async with (BareAgents(config.agents) as bare,
                httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=300,
                                  limits=limits) as client):
        sockets = [str(path) for path in bare.sockets]
        meter = _Meter(config, server.pid, [p.pid for p in bare.processes])
        uuids = [socket_vm_uuid(path) for path in sockets]

        async def api_one(k: int) -> float:
            elapsed, reply = await api.exec_async(client, uuids[k % len(uuids)], COMMAND)
            if reply.get("stdout") != EXPECTED.decode():
                raise RuntimeError(f"API: unexpected reply {reply!r}")
            return elapsed

        raw = _RawClients(sockets)
        try:
            await meter.warm(raw.one)
            await meter.measure(result.raw, raw.one, 0, half)
        finally:
            await raw.release()
        engine = _Engine(sockets)
        try:
            await meter.warm(engine.one)
            await meter.measure(result.engine, engine.one, 0, config.commands)
        finally:
            await engine.release()
        host = await _add_host(client, bare.sockets[0].parent, uuids)
        await meter.warm(api_one)
        await asyncio.sleep(config.settle)
        result.idle_kib = server.memory().rss_kib
        with PeakSampler(server.pid) as peak:
            await meter.measure(result.api, api_one, 0, config.commands)
        result.peak_kib = peak.peak_kib
        await meter.measure_batch(result.run, lambda: runs.run_all(
            client, uuids, config.commands, config.concurrency), config.commands)
        # The server deletes its runs' files in the agents' state 2 s after they end: let it,
        # before DeleteHost makes it let go of the sockets.
        await asyncio.sleep(max(0.0, CLEANUP_DELAY + 1 - config.settle))
        await api.delete_host(client, host)
        try:
            await raw.connect()
            await meter.measure(result.raw, raw.one, half, config.commands - half)
        finally:
            await raw.release()
    return result


async def _add_host(client: httpx.AsyncClient, directory: Path, uuids: list[str]) -> str:
    """Register the agents' directory as a host; returns its UUID."""
    host, listed = await api.add_socket_dir_host(client, "bench-bare-agents", directory)
    missing = set(uuids) - set(listed.values())
    if missing:
        raise RuntimeError(f"{len(missing)} agent sockets not listed by QueryVmInstance")
    return host
