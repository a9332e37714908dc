"""The clients vmexec is compared with, each a few lines, all running ``sh -c 'echo hi'``:

* :class:`LibvirtLoop` — raw ``guest-exec`` + ``guest-exec-status`` through libvirt-python.
  Status at once, then every 2 ms: the raw agent's round trip (a). With 1 s it is the rule the
  peers use (c): ZStack's agent (``zstacklib/utils/qga.py`` ``guest_exec_bash``) sleeps 1 s
  before every status, Proxmox's ``qm guest exec`` asks at once, then once a second.
* :func:`virsh_exec` — the same pair as a shell user types it, ``virsh qemu-agent-command``,
  one process per call (b).
* :func:`socket_exec` — a raw asyncio client on an agent's unix socket (the fan-out baseline).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

import libvirt
import libvirt_qemu

from vmexec.agent.client import GuestAgent

COMMAND = "echo hi"
EXPECTED = b"hi\n"
EXEC_ARGS: dict[str, Any] = {"path": "/bin/sh", "arg": ["-c", COMMAND], "capture-output": True}
#: The same command as the engine runs it by default (issue 3: under ``bash``, found on the
#: agent's PATH), without anything of the engine's: what the guest's bash alone costs.
BASH_EXEC_ARGS: dict[str, Any] = {**EXEC_ARGS, "path": "bash"}
CALL_TIMEOUT = 10
RAW_POLL = 0.002
PEER_POLL = 1.0


class BaselineError(RuntimeError):
    """A baseline client got a wrong answer (the command did not print ``hi``)."""


def _check(status: dict[str, Any]) -> None:
    out = base64.b64decode(status.get("out-data", ""))
    if status.get("exitcode") != 0 or out != EXPECTED:
        raise BaselineError(f"unexpected result {status!r}")


def _status_request(pid: int) -> str:
    return json.dumps({"execute": "guest-exec-status", "arguments": {"pid": pid}})


class LibvirtLoop:
    """Blocking libvirt-python client for one domain (its own connection)."""

    def __init__(self, uri: str, domain_uuid: str) -> None:
        self._conn = libvirt.open(uri)
        self._dom = self._conn.lookupByUUIDString(domain_uuid)
        #: (command, ms) of every agent call of the last run.
        self.calls: list[tuple[str, float]] = []

    def call(self, command: str, arguments: dict[str, Any]) -> Any:
        request = json.dumps({"execute": command, "arguments": arguments})
        started = time.perf_counter()
        reply = libvirt_qemu.qemuAgentCommand(self._dom, request, CALL_TIMEOUT, 0)
        self.calls.append((command, (time.perf_counter() - started) * 1000))
        return json.loads(reply)["return"]

    def run(self, poll: float, *, sleep_first: bool = False,
            exec_args: dict[str, Any] = EXEC_ARGS,
            check: Callable[[dict[str, Any]], None] | None = None) -> float:
        """Run ``echo hi`` (``exec_args``, its final status checked by ``check``): status
        every ``poll`` seconds, the first at once (or after a ``poll`` with
        ``sleep_first``). Returns ms."""
        self.calls = []
        started = time.perf_counter()
        pid = self.call("guest-exec", exec_args)["pid"]
        if sleep_first:
            time.sleep(poll)
        while not (status := self.call("guest-exec-status", {"pid": pid}))["exited"]:
            time.sleep(poll)
        elapsed = (time.perf_counter() - started) * 1000
        (check or _check)(status)
        return elapsed

    def close(self) -> None:
        self._conn.close()


def _virsh(uri: str, domain: str, request: str) -> Any:
    out = subprocess.run(["virsh", "-c", uri, "qemu-agent-command", domain, request],
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)["return"]


def virsh_exec(uri: str, domain: str) -> float:
    """``echo hi`` through ``virsh qemu-agent-command``; the status is asked again at once
    (each virsh process takes long enough). Returns ms."""
    started = time.perf_counter()
    request = json.dumps({"execute": "guest-exec", "arguments": EXEC_ARGS})
    pid = _virsh(uri, domain, request)["pid"]
    while not (status := _virsh(uri, domain, _status_request(pid)))["exited"]:
        pass
    elapsed = (time.perf_counter() - started) * 1000
    _check(status)
    return elapsed


async def socket_exec(agent: GuestAgent, exec_args: dict[str, Any] = EXEC_ARGS) -> float:
    """``echo hi`` on an agent reached by vmexec's unix-socket transport, polled every 2 ms
    (the guest-agent client only: no engine), under ``sh`` (or ``exec_args``' program).
    Returns ms."""
    started = time.perf_counter()
    pid = await agent.exec(exec_args["path"], exec_args["arg"], timeout=CALL_TIMEOUT)
    while True:
        status = await agent.exec_status(pid, timeout=CALL_TIMEOUT)
        if status.exited:
            break
        await asyncio.sleep(RAW_POLL)
    elapsed = (time.perf_counter() - started) * 1000
    if status.exit_code != 0 or status.stdout != EXPECTED:
        raise BaselineError(f"unexpected result {status!r}")
    return elapsed
