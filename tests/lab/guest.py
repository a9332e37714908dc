"""Test helper: run a program in a lab VM with guest-exec / guest-exec-status through libvirt.

Deliberately independent of vmexec's own agent client: the lab's tests check the lab, not it.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass

import libvirt
import libvirt_qemu


@dataclass(frozen=True)
class Completed:
    exit_code: int
    stdout: str
    stderr: str


def agent(dom: libvirt.virDomain, command: str, timeout: int = 10, **arguments: object) -> dict:
    """One agent command through libvirt; returns the reply's ``return`` value."""
    message = {"execute": command, **({"arguments": arguments} if arguments else {})}
    reply = json.loads(libvirt_qemu.qemuAgentCommand(dom, json.dumps(message), timeout, 0))
    return reply["return"]


def run(dom: libvirt.virDomain, path: str, *args: str, timeout: float = 30.0) -> Completed:
    """Run ``path args`` in the guest and wait for it to exit."""
    started = agent(dom, "guest-exec", path=path, arg=list(args), **{"capture-output": True})
    deadline = time.monotonic() + timeout
    while True:
        status = agent(dom, "guest-exec-status", pid=started["pid"])
        if status["exited"]:
            break
        assert time.monotonic() < deadline, f"{path} {args} still running after {timeout} s"
        time.sleep(0.02)

    def text(key: str) -> str:
        return base64.b64decode(status.get(key, "")).decode(errors="replace")

    return Completed(status.get("exitcode", -1), text("out-data"), text("err-data"))


def sh(dom: libvirt.virDomain, script: str) -> Completed:
    """``/bin/sh -c script`` in the guest."""
    return run(dom, "/bin/sh", "-c", script)
