"""`vmexec lab up/status/down` end to end, on lab instances of their own.

The session's VMs (vmexec-lab-*) must survive: `down` is exercised on separate prefixes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest

from vmexec.lab import Lab, LabVm, guests

from .guest import agent

pytestmark = [pytest.mark.vm, pytest.mark.slow]

PREFIX = "vmexec-labtest"


def vmexec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmexec.cli.main", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def qemu_processes(name: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", f"guest={name},"], capture_output=True, text=True)
    return out.stdout.splitlines()


@pytest.fixture
def scratch_lab() -> Iterator[Lab]:
    lab = Lab(PREFIX)
    yield lab
    lab.down()  # whatever the test left


def test_cli_up_twice_returns_the_same_vms_and_down_removes_them(
        scratch_lab: Lab, lab_vms: list[LabVm], conn: libvirt.virConnect) -> None:
    first = vmexec("lab", "up", "--vms", "2", "--prefix", PREFIX)
    assert first.returncode == 0, first.stderr
    vms = json.loads(first.stdout)
    assert [(vm["name"], vm["state"]) for vm in vms] == [
        (f"{PREFIX}-1", "running"), (f"{PREFIX}-2", "running")]
    for vm in vms:
        assert agent(conn.lookupByUUIDString(vm["libvirt_uuid"]), "guest-ping") == {}

    second = vmexec("lab", "up", "--vms", "2", "--prefix", PREFIX)
    assert second.returncode == 0, second.stderr
    assert [vm["uuid"] for vm in json.loads(second.stdout)] == [vm["uuid"] for vm in vms]

    status = vmexec("lab", "status", "--prefix", PREFIX)
    assert [vm["uuid"] for vm in json.loads(status.stdout)] == [vm["uuid"] for vm in vms]

    down = vmexec("lab", "down", "--prefix", PREFIX)
    assert down.returncode == 0, down.stderr
    assert sorted(json.loads(down.stdout)["domains"]) == [f"{PREFIX}-1", f"{PREFIX}-2"]
    assert json.loads(vmexec("lab", "status", "--prefix", PREFIX).stdout) == []
    names = {dom.name() for dom in conn.listAllDomains(0)}
    assert not any(name.startswith(f"{PREFIX}-") for name in names)
    assert qemu_processes(f"{PREFIX}-1") == [] and qemu_processes(f"{PREFIX}-2") == []
    assert not (scratch_lab.state_dir / "console").exists()

    # Down of one lab instance leaves the others alone.
    for vm in lab_vms:
        assert agent(conn.lookupByUUIDString(vm.libvirt_uuid), "guest-ping") == {}
    again = vmexec("lab", "down", "--prefix", PREFIX)
    assert again.returncode == 0, again.stderr  # nothing left to remove is fine


def test_up_extends_restarts_a_stopped_vm_and_the_agent_is_supervised(
        scratch_lab: Lab, lab_vms: list[LabVm], conn: libvirt.virConnect) -> None:
    [one] = scratch_lab.up(1)
    two = scratch_lab.up(2)
    assert two[0].uuid == one.uuid and two[1].name == f"{PREFIX}-2"
    conn.lookupByUUIDString(one.libvirt_uuid).destroy()
    [restarted, _] = scratch_lab.up(2)
    assert (restarted.uuid, restarted.state) == (one.uuid, "running")
    assert restarted.ready_seconds > 0  # it had to boot again

    # The agent is supervised: killed, it is started again.
    dom = conn.lookupByUUIDString(one.libvirt_uuid)
    agent(dom, "guest-exec", path="/bin/sh", arg=["-c", "sleep 0.2; kill $(pidof qemu-ga)"])
    time.sleep(0.5)
    deadline = time.monotonic() + 30
    while not guests.ping(dom):
        assert time.monotonic() < deadline, "qemu-ga was not restarted"
        time.sleep(0.2)
    assert Path(restarted.console_log).read_text().count("vmexec-lab: agent started") == 2

    report = scratch_lab.down()
    assert sorted(report.domains) == [f"{PREFIX}-1", f"{PREFIX}-2"]
    assert report.daemons == []  # the session's VMs still need libvirtd
