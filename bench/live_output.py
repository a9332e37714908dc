"""Measures 4 and 5, over bare agents (real ``qemu-ga`` on the host, so the command's clock is
the bench's clock):

4. **Live output latency**: a command prints the wall-clock time (``date +%s.%N``) every
   ``interval`` seconds; the bench follows the execution's ``/output`` Server-Sent Events and
   notes when each line arrives. Latency = arrival - the time the line holds, which is the
   time from the line landing in the run's file to its SSE event (plus ``date``'s own start).
5. **Runs over many agents**, two of ``sleep 2; echo hi`` over ``agents`` bare agents:
   the first at a tenth of them at a time (the server meets every VM), then its idle RSS over
   its RSS before the agents were registered, per VM; the second with maxConcurrency = all of
   them, so every target is in flight at once for 2 s: its peak RSS over the idle RSS before
   it, per in-flight target. (One run of all at once on a fresh server would count both in
   its peak, and the memory Python keeps after a peak in the "per VM" idle RSS after it.)
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

import httpx

from vmexec.execution.engine import CLEANUP_DELAY
from vmexec.hypervisor.sockets import socket_vm_uuid
from vmexec.lab.bare_agents import BareAgents

from . import api, runs
from .server import ApiServer, PeakSampler

EXECUTIONS_PATH = "/zstack/v1/vm-instances/commands/executions"


@dataclass(frozen=True, slots=True)
class LiveConfig:
    lines: int = 40
    interval: float = 0.25
    #: Agents of measure 5 (each bare agent is a qemu-ga process of about 3 MB).
    agents: int = 2000


@dataclass
class LiveResult:
    config: LiveConfig
    #: Measure 4: each line's latency (ms).
    line_ms: list[float] = field(default_factory=list)
    #: Measure 5: server RSS (KiB) before the agents were registered, idle once they were,
    #: idle after the first run (a tenth of them at a time), peak in the second (all at once).
    start_kib: int = 0
    idle_kib: int = 0
    after_kib: int = 0
    peak_kib: int = 0
    #: The second run's seconds.
    run_seconds: float = 0.0
    #: Measure 5's targets that failed, by error code (a limit of the machine, reported).
    failed: dict[str, int] = field(default_factory=dict)

    @property
    def per_inflight_kib(self) -> float:
        """The second run's peak over the idle RSS before it, per target (all in flight)."""
        return (self.peak_kib - self.after_kib) / self.config.agents

    @property
    def per_vm_after_kib(self) -> float:
        """Idle RSS growth per VM the server has run a command on (kept after the work),
        registration included."""
        return (self.after_kib - self.start_kib) / self.config.agents


async def _follow_lines(client: httpx.AsyncClient, execution: str) -> list[float]:
    """Follow ``execution``'s output; each complete line's latency in ms."""
    latencies: list[float] = []
    pending = ""
    async with client.stream("GET", f"{EXECUTIONS_PATH}/{execution}/output",
                             timeout=httpx.Timeout(30.0, read=None)) as reply:
        if reply.status_code != 200:
            raise api.ApiCallError(f"output: {reply.status_code} {await reply.aread()!r}")
        event = ""
        async for line in reply.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:") and event == "stdout":
                arrived = time.time()
                pending += json.loads(line[5:].strip())["text"]
                *complete, pending = pending.split("\n")
                latencies += [(arrived - float(stamp)) * 1000 for stamp in complete if stamp]
            elif line.startswith("data:") and event == "result":
                return latencies
    raise api.ApiCallError(f"output of {execution} ended without a result event")


async def _live(client: httpx.AsyncClient, vm_uuid: str, config: LiveConfig) -> list[float]:
    execution = uuid.uuid4().hex
    command = (f"i=0; while [ $i -lt {config.lines} ]; do date +%s.%N; "
               f"sleep {config.interval}; i=$((i+1)); done")
    reply = await client.post(api.EXEC_PATH, headers={
        "X-Job-UUID": execution, "Prefer": "respond-async"},
        json=api.exec_body(vm_uuid, command,
                           commandTimeout=round(config.lines * config.interval * 4 + 30)))
    if reply.status_code != 202:
        raise api.ApiCallError(f"exec: {reply.status_code} {reply.text[:500]}")
    latencies = await _follow_lines(client, execution)
    if len(latencies) != config.lines:
        raise api.ApiCallError(f"live output: {len(latencies)} of {config.lines} lines")
    return latencies


async def measure(server: ApiServer, config: LiveConfig) -> LiveResult:
    result = LiveResult(config, start_kib=server.memory().rss_kib)
    limits = httpx.Limits(max_connections=50, keepalive_expiry=1.0)
    async with (BareAgents(config.agents) as bare,
                httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=600,
                                  limits=limits) as client):
        uuids = [socket_vm_uuid(str(path)) for path in bare.sockets]
        host, listed = await api.add_socket_dir_host(client, "bench-live", bare.sockets[0].parent)
        if set(uuids) - set(listed.values()):
            raise api.ApiCallError("agent sockets missing from QueryVmInstance")
        result.line_ms = await _live(client, uuids[0], config)
        await asyncio.sleep(CLEANUP_DELAY + 1)
        result.idle_kib = server.memory().rss_kib
        await _sleep_run(client, uuids, max(1, len(uuids) // 10), result)
        await asyncio.sleep(CLEANUP_DELAY + 2)
        result.after_kib = server.memory().rss_kib
        with PeakSampler(server.pid) as peak:
            started = time.perf_counter()
            await _sleep_run(client, uuids, len(uuids), result)
            result.run_seconds = time.perf_counter() - started
        result.peak_kib = peak.peak_kib
        await api.delete_host(client, host)
    return result


async def _sleep_run(client: httpx.AsyncClient, uuids: list[str], max_concurrency: int,
                     result: LiveResult) -> None:
    """A run of ``sleep 2; echo hi`` on every VM; its failed targets counted in ``result``."""
    run_uuid = await runs.start(client, uuids, max_concurrency=max_concurrency,
                                command="sleep 2; echo hi")
    run = await runs.wait(client, run_uuid)
    if len(run.get("targets") or []) != len(uuids):
        raise api.ApiCallError(f"run {run_uuid}: not every target is listed")
    for target in runs.failures(run):
        code = str(target.get("errorCode") or target.get("state"))
        result.failed[code] = result.failed.get(code, 0) + 1
