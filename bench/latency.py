"""Measure 1: one ``echo hi`` on one lab VM, by every method, interleaved in random order so
that the machine's drift hits all methods alike."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import libvirt

from vmexec.agent.directory import AgentDirectory
from vmexec.agent.targets import LibvirtTarget
from vmexec.execution.engine import PLATFORMS, Executor
from vmexec.execution.models import ExecRequest, Platform, Shell
from vmexec.hypervisor.libvirt_host import LibvirtHosts
from vmexec.lab import LabVm

from . import api
from .baselines import (
    BASH_EXEC_ARGS,
    COMMAND,
    EXPECTED,
    PEER_POLL,
    RAW_POLL,
    LibvirtLoop,
    virsh_exec,
)
from .server import ApiServer
from .trace import Call, RunBreakdown, breakdown, deferred_breakdown, record_calls

METHODS: dict[str, str] = {
    "a": "(a) raw guest-exec + guest-exec-status, libvirt-python, 2 ms polls",
    "a_bash": "(a') the raw pair of (a) running `bash -c` (issue 3's default shell), nothing "
              "of vmexec's",
    "a_launch": "(a'') the raw pair of (a) running the engine's own launch: bash, its prelude "
                "and run files, no vmexec code",
    "b": "(b) `virsh qemu-agent-command` pair, one process per call",
    "c": "(c) 1 s polling rule, ZStack agent (sleep 1 s, then status; repeat)",
    "c_pve": "(c') 1 s polling rule, Proxmox `qm guest exec` (status at once, then 1/s)",
    "d": "(d) vmexec engine `Executor.run` (bash, the default)",
    "d_sh": "(d') vmexec engine `Executor.run`, shell=sh",
    "e": "(e) vmexec HTTP API, sync PUT ExecuteGuestVmCommand",
}
#: The polling rules take about a second each: only in some rounds.
POLLING = ("c", "c_pve")
#: Methods traced call by call after the measurement (the raw loop and the engine).
TRACED = ("a", "d", "d_sh")
#: Seconds to wait for the engine's deferred cleanup (2 s after a run) after tracing.
DEFERRED_WAIT = 3.0
#: Where (a'') keeps its runs' files in the guest (removed at the end).
RAW_RUN_DIR = "/tmp/vmexec-bench-raw"


@dataclass(frozen=True, slots=True)
class LatencyConfig:
    iterations: int = 100
    #: Rounds that include the polling rules (c), (c'); each costs a second or two.
    polling_iterations: int = 12
    warmup: int = 3
    traced: int = 15
    seed: int | None = None


@dataclass
class LatencyResult:
    samples: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in METHODS})
    #: ``durationMs`` of the (e) replies: the engine's time inside the server.
    server_ms: list[float] = field(default_factory=list)
    breakdowns: dict[str, RunBreakdown] = field(default_factory=dict)


def schedule(iterations: int, polling: int, rng: random.Random) -> list[list[str]]:
    """One shuffled list of methods per round; the polling rules only in ``polling`` evenly
    spread rounds."""
    with_c = {round(i * iterations / polling) for i in range(polling)} if polling else set()
    rounds = []
    for i in range(iterations):
        methods = [m for m in METHODS if m not in POLLING or i in with_c]
        rng.shuffle(methods)
        rounds.append(methods)
    return rounds


def _check_launch(status: dict[str, Any]) -> None:
    """The launch's status line (``VMEXEC1 0 exited …``), then the command's inline output."""
    out = base64.b64decode(status.get("out-data", ""))
    if (status.get("exitcode") != 0 or not out.startswith(b"VMEXEC1 0 exited ")
            or not out.endswith(b"\n" + EXPECTED)):
        raise RuntimeError(f"(a''): unexpected result {status!r}")


class _Methods:
    """Every method, as ``await self.run(name)`` -> milliseconds."""

    def __init__(self, vm: LabVm, server: ApiServer) -> None:
        self.vm = vm
        self.raw = LibvirtLoop(vm.uri, vm.libvirt_uuid)
        self.hosts = LibvirtHosts()
        self.agents = AgentDirectory(self.hosts)
        self.executor = Executor(self.agents)
        self.target = LibvirtTarget(vm.uri, vm.uuid)
        self.http = httpx.Client(base_url=server.url, headers=server.auth, timeout=120)
        self.server_ms: list[float] = []
        self._table: dict[str, Callable[[], Awaitable[float]]] = {
            "a": self._raw, "a_bash": self._raw_bash, "a_launch": self._raw_launch,
            "b": self._virsh, "c": self._zstack, "c_pve": self._proxmox,
            "d": self._engine, "d_sh": self._engine_sh, "e": self._api}

    async def run(self, method: str) -> float:
        return await self._table[method]()

    # The blocking methods (the baselines, the sync HTTP client) run on the event loop's
    # thread on purpose: nothing else of the bench runs meanwhile, and a thread hop would only
    # add to their time. (The engine's deferred cleanup then runs during the engine's runs.)
    async def _raw(self) -> float:
        return self.raw.run(RAW_POLL)

    async def _raw_bash(self) -> float:
        return self.raw.run(RAW_POLL, exec_args=BASH_EXEC_ARGS)

    async def _raw_launch(self) -> float:
        launch = PLATFORMS[Platform.LINUX].launch(ExecRequest(COMMAND), uuid.uuid4().hex,
                                                  run_dir=RAW_RUN_DIR, interpreter="bash")
        return self.raw.run(RAW_POLL, exec_args={"path": launch.path, "arg": launch.args,
                                                 "capture-output": launch.capture_output},
                            check=_check_launch)

    async def _zstack(self) -> float:
        return self.raw.run(PEER_POLL, sleep_first=True)

    async def _proxmox(self) -> float:
        return self.raw.run(PEER_POLL)

    async def _virsh(self) -> float:
        return virsh_exec(self.vm.uri, self.vm.name)

    async def _engine(self, shell: Shell = Shell.DEFAULT) -> float:
        started = time.perf_counter()
        result = await self.executor.run(self.target, ExecRequest(COMMAND, shell=shell))
        elapsed = (time.perf_counter() - started) * 1000
        if result.exit_code != 0 or result.stdout.data != EXPECTED:
            raise RuntimeError(f"engine: unexpected result {result!r}")
        return elapsed

    async def _engine_sh(self) -> float:
        return await self._engine(Shell.SH)

    async def _api(self) -> float:
        elapsed, reply = api.exec_sync(self.http, self.vm.uuid, COMMAND)
        if reply.get("stdout") != EXPECTED.decode():
            raise RuntimeError(f"API: unexpected reply {reply!r}")
        self.server_ms.append(float(reply["durationMs"]))
        return elapsed

    async def aclose(self) -> None:
        with contextlib.suppress(libvirt.libvirtError):
            self.raw.call("guest-exec", {"path": "rm", "arg": ["-rf", "--", RAW_RUN_DIR]})
        self.http.close()
        await self.executor.aclose()
        await self.agents.aclose()
        self.hosts.close()
        self.raw.close()


async def measure(vm: LabVm, server: ApiServer, config: LatencyConfig) -> LatencyResult:
    """Raises on any wrong result (every method must print ``hi``)."""
    rng = random.Random(config.seed)
    methods = _Methods(vm, server)
    result = LatencyResult()
    try:
        for _ in range(config.warmup):
            for method in ("a", "a_bash", "a_launch", "b", "d", "d_sh", "e"):
                await methods.run(method)
        methods.server_ms.clear()
        for round_ in schedule(config.iterations, config.polling_iterations, rng):
            for method in round_:
                result.samples[method].append(await methods.run(method))
        result.server_ms = list(methods.server_ms)
        result.breakdowns = await _trace(methods, config.traced, rng)
    finally:
        await methods.aclose()
    return result


async def _trace(methods: _Methods, runs: int, rng: random.Random) -> dict[str, RunBreakdown]:
    """Run the raw loop and the engine ``runs`` times more, logging every agent call."""
    if runs < 1:
        return {}
    log = record_calls(methods.agents.get(methods.target))
    traced: dict[str, list[tuple[float, list[Call]]]] = {m: [] for m in TRACED}
    for _ in range(runs):
        order = list(TRACED)
        rng.shuffle(order)
        for method in order:
            log.calls.clear()
            wall = await methods.run(method)
            calls = methods.raw.calls if method == "a" else list(log.calls)
            traced[method].append((wall, calls))
    await asyncio.sleep(DEFERRED_WAIT)  # the engine's deferred work of the last runs
    result = {m: breakdown(r) for m, r in traced.items()}
    engine_runs = sum(len(traced[m]) for m in TRACED if m != "a")
    result["deferred"] = deferred_breakdown(log.deferred, engine_runs)
    return result
