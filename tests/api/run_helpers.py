"""Helpers of the run tests (scripted and on lab VMs): start, wait for, read and follow runs
over real HTTP."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from api.test_exec_async import JOBS, poll

RUNS = "/zstack/v1/vm-instances/commands/runs"


def run_body(command: str, *, uuids: list[str] | None = None,
             conditions: list[str] | None = None, **params: Any) -> dict[str, Any]:
    targets: dict[str, Any] = {}
    if uuids is not None:
        targets["vmInstanceUuids"] = uuids
    if conditions is not None:
        targets["conditions"] = conditions
    return {"params": {"command": command, "platform": "Linux", "targets": targets, **params}}


def start_run(client: httpx.Client, command: str, *, headers: dict[str, str] | None = None,
              **options: Any) -> str:
    """POST a run; asserts the 202 and returns the run's uuid (the job's)."""
    reply = client.post(RUNS, json=run_body(command, **options), headers=headers or {})
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert body["location"].endswith(JOBS + body["uuid"])
    return str(body["uuid"])


def wait_run(client: httpx.Client, uuid: str, timeout: float = 60.0) -> dict[str, Any]:
    """The run's inventory from its job's reply, once it ended."""
    reply = poll(client, JOBS + uuid, timeout=timeout)
    assert reply.status_code == 200, reply.text
    inventory: dict[str, Any] = reply.json()["inventory"]
    return inventory


def get_run(client: httpx.Client, uuid: str) -> dict[str, Any]:
    reply = client.get(f"{RUNS}/{uuid}")
    assert reply.status_code == 200, reply.text
    [inventory] = reply.json()["inventories"]
    return dict(inventory)


def wait_until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def events(client: httpx.Client, uuid: str,
           timeout: float = 60.0) -> list[tuple[str, dict[str, Any], float]]:
    """The run's SSE events until the stream ends: ``(event, data, monotonic arrival)``."""
    received: list[tuple[str, dict[str, Any], float]] = []
    with client.stream("GET", f"{RUNS}/{uuid}/events", timeout=timeout) as reply:
        assert reply.status_code == 200, reply.read()
        assert reply.headers["content-type"].startswith("text/event-stream")
        kind, data = "message", []
        for line in reply.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and data:
                received.append((kind, json.loads("\n".join(data)), time.monotonic()))
                kind, data = "message", []
    return received
