"""``make demo``'s steps end to end, as CI runs them: ``scripts/demo.sh`` without a terminal,
on a free port with its own state dir, database and CLI config (so that it clashes neither
with other tests nor with a demo the developer left running)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fixtures.server import free_port

from vmexec.lab import LabVm

pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
_CLIENT_ENV = ("VMEXEC_SERVER", "VMEXEC_SESSION", "VMEXEC_PASSWORD")


@dataclass(frozen=True)
class Demo:
    env: dict[str, str]
    url: str

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "scripts/demo.sh", *args], cwd=ROOT, env=self.env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=800, check=False)


@pytest.fixture
def demo(tmp_path: Path, lab_vms: list[LabVm]) -> Iterator[Demo]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV}
    env.update(DEMO_NONINTERACTIVE="1", DEMO_PORT=str(port),
               DEMO_STATE_DIR=str(tmp_path / "state"), XDG_CONFIG_HOME=str(tmp_path / "config"),
               VMEXEC_DB=f"sqlite:///{tmp_path / 'vmexec.db'}")
    demo = Demo(env, f"http://127.0.0.1:{port}")
    try:
        yield demo
    finally:
        stopped = demo.run("stop")
        assert stopped.returncode == 0, stopped.stderr


def _exec_reply(out: str) -> dict[str, object]:
    """The curl ExecuteGuestVmCommand reply the demo printed (indented JSON after its note)."""
    start = out.index("(the reply, indented by python -m json.tool:)\n")
    block = out[start:].split("\n", 1)[1]
    reply: dict[str, object] = json.JSONDecoder().raw_decode(block)[0]
    return reply


def test_demo_runs_the_real_guests_and_leaves_the_server_running(
        demo: Demo, lab_vms: list[LabVm]) -> None:
    first = demo.run()
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    vm1, vm2 = lab_vms[0], lab_vms[1]

    # curl: login, then the spec's PUT with real values, answered by the guest itself.
    assert re.search(r'^\{"inventory":\{"uuid":"[0-9a-f]{32}"', out, re.M), out
    assert f"curl -X PUT '{demo.url}/zstack/v1/vm-instances/commands/exec'" in out
    reply = _exec_reply(out)
    assert reply["success"] is True and reply["exitCode"] == 0
    stdout = str(reply["stdout"])
    assert stdout.startswith(f"{vm1.name}\n") and re.search(r"\n\d+\.\d+\.\d+-", stdout)
    assert reply["stderr"] == "to-stderr\n"
    inventory = reply["vmInstance"]
    assert isinstance(inventory, dict) and (inventory["uuid"], inventory["name"]) == (
        vm1.uuid, vm1.name)

    # The CLI against both VMs: their own hostnames, and the exit status passed through.
    assert "$ vmexec vm list\n" in out and vm1.uuid in out and vm2.uuid in out
    for vm in (vm1, vm2):
        assert f"$ vmexec exec {vm.name} -- hostname\n{vm.name}\n" in out
    assert "out\nexit status: 3\n" in out and "err\n" in first.stderr
    assert "make demo-down" in out

    # The server keeps running; a second run reuses it (and the VMs).
    assert httpx.get(f"{demo.url}/health", timeout=10).json()["status"] == "ok"
    second = demo.run()
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"reusing the vmexec server at {demo.url}" in second.stderr
    assert f"{vm2.name}\n" in second.stdout

    stopped = demo.run("stop")
    assert stopped.returncode == 0 and "stopped the vmexec server" in stopped.stdout
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{demo.url}/health", timeout=10)
