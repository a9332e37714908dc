"""The vmexec HTTP API as a ZStack client uses it: ExecuteGuestVmCommand (sync ``PUT``),
AddKVMHost for an agent-socket directory, QueryVmInstance."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

EXEC_PATH = "/zstack/v1/vm-instances/commands/exec"


class ApiCallError(RuntimeError):
    """The API answered something other than a successful result."""


def exec_body(vm_uuid: str, command: str, **extra: Any) -> dict[str, Any]:
    return {"params": {"vmInstanceUuid": vm_uuid, "platform": "Linux", "command": command,
                       **extra}}


def _result(reply: httpx.Response) -> dict[str, Any]:
    if reply.status_code != 200:
        raise ApiCallError(f"ExecuteGuestVmCommand: {reply.status_code} {reply.text[:500]}")
    body: dict[str, Any] = reply.json()
    if body.get("exitCode") != 0:
        raise ApiCallError(f"ExecuteGuestVmCommand: exit code {body.get('exitCode')}: "
                           f"{str(body.get('stderr'))[:500]}")
    return body


def exec_sync(client: httpx.Client, vm_uuid: str, command: str,
              **extra: Any) -> tuple[float, dict[str, Any]]:
    """Returns the wall time (ms) and the reply. Raises ApiCallError."""
    started = time.perf_counter()
    reply = client.put(EXEC_PATH, json=exec_body(vm_uuid, command, **extra))
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, _result(reply)


async def exec_async(client: httpx.AsyncClient, vm_uuid: str, command: str,
                     **extra: Any) -> tuple[float, dict[str, Any]]:
    """Returns the wall time (ms) and the reply. Raises ApiCallError."""
    started = time.perf_counter()
    reply = await client.put(EXEC_PATH, json=exec_body(vm_uuid, command, **extra))
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, _result(reply)


async def add_socket_dir_host(client: httpx.AsyncClient, name: str,
                              directory: Path) -> tuple[str, dict[str, str]]:
    """Register ``directory`` (one guest-agent ``*.sock`` per VM) as a host; returns its UUID
    and ``{vm name: vm uuid}`` of its VMs as QueryVmInstance lists them."""
    reply = await client.post("/zstack/v1/hosts/kvm", json={"params": {
        "name": name, "managementIp": "127.0.0.1", "libvirtUri": f"unix://{directory}"}})
    if reply.status_code != 200:
        raise ApiCallError(f"AddKVMHost: {reply.status_code} {reply.text[:500]}")
    host_uuid = reply.json()["inventory"]["uuid"]
    reply = await client.get("/zstack/v1/vm-instances", params={
        "q": f"hostUuid={host_uuid}", "limit": "10000", "fields": "uuid,name"})
    if reply.status_code != 200:
        raise ApiCallError(f"QueryVmInstance: {reply.status_code} {reply.text[:500]}")
    return host_uuid, {vm["name"]: vm["uuid"] for vm in reply.json()["inventories"]}


async def delete_host(client: httpx.AsyncClient, host_uuid: str) -> None:
    reply = await client.delete(f"/zstack/v1/hosts/{host_uuid}")
    if reply.status_code != 200:
        raise ApiCallError(f"DeleteHost: {reply.status_code} {reply.text[:500]}")
