"""Runs through the API (one request, many targets), as the fan-out's fourth client and as a
memory measure over many agents: ``POST /zstack/v1/vm-instances/commands/runs``, then the job
polled until the run ends, then the run's targets checked (every one ``Succeeded`` with the
expected output size). Any other outcome raises: a fast wrong answer is not a result.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from .api import ApiCallError
from .baselines import COMMAND, EXPECTED

RUNS_PATH = "/zstack/v1/vm-instances/commands/runs"
#: Seconds between polls of a run's job.
POLL = 0.1


async def start(client: httpx.AsyncClient, vm_uuids: list[str], *, max_concurrency: int,
                command: str = COMMAND) -> str:
    """Start a run of ``command`` on ``vm_uuids``; returns its UUID."""
    run_uuid = uuid.uuid4().hex
    reply = await client.post(RUNS_PATH, headers={"X-Job-UUID": run_uuid}, json={"params": {
        "command": command, "platform": "Linux",
        "targets": {"vmInstanceUuids": vm_uuids},
        "maxConcurrency": max_concurrency, "maxErrors": 0}})
    if reply.status_code != 202:
        raise ApiCallError(f"run: {reply.status_code} {reply.text[:500]}")
    return run_uuid


async def wait(client: httpx.AsyncClient, run_uuid: str) -> dict[str, Any]:
    """Poll the run's job until it ends; returns the run with its targets."""
    while True:
        reply = await client.get(f"/zstack/v1/api-jobs/{run_uuid}")
        if reply.status_code != 202:
            break
        await asyncio.sleep(POLL)
    if reply.status_code != 200:
        raise ApiCallError(f"run {run_uuid}: {reply.status_code} {reply.text[:500]}")
    got = await client.get(f"{RUNS_PATH}/{run_uuid}")
    if got.status_code != 200:
        raise ApiCallError(f"run {run_uuid}: {got.status_code} {got.text[:500]}")
    inventory: dict[str, Any] = got.json()["inventories"][0]
    return inventory


def failures(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's targets that did not succeed with the expected output."""
    return [t for t in run.get("targets") or [] if t.get("state") != "Succeeded"
            or t.get("stdoutBytes") != len(EXPECTED)]


def check(run: dict[str, Any], targets: int) -> None:
    """Raises unless every one of ``targets`` targets succeeded with the expected output."""
    listed = run.get("targets") or []
    bad = failures(run)
    if run.get("state") != "Succeeded" or len(listed) != targets or bad:
        raise ApiCallError(f"run {run.get('uuid')}: state {run.get('state')}, "
                           f"{len(listed)} of {targets} targets, {len(bad)} wrong: "
                           f"{bad[:3]!r}")


async def run_all(client: httpx.AsyncClient, vm_uuids: list[str], commands: int,
                  concurrency: int) -> tuple[float, list[float]]:
    """``commands`` commands as ONE run whose targets are ``vm_uuids`` over and over (a VM
    listed again is a target again), ``concurrency`` at once. Returns the wall seconds and the
    run's ms (a run's commands have no latency of their own here)."""
    targets = [vm_uuids[k % len(vm_uuids)] for k in range(commands)]
    started = time.perf_counter()
    run_uuid = await start(client, targets, max_concurrency=concurrency)
    check(await wait(client, run_uuid), len(targets))
    seconds = time.perf_counter() - started
    return seconds, [seconds * 1000]
