"""Runs on real lab VMs (real libvirt, QEMU guests, qemu-ga) through a real vmexec server:
concurrency from the guests' own clocks, maxErrors, conditions, live events, cancel, and a
restart of vmexec mid-run counted in the guests."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import pytest
from fixtures.server import RunningServer, ServerFactory

from api.run_helpers import events, get_run, start_run, wait_run, wait_until
from api.test_exec import EXEC, body
from vmexec.execution.engine import Executor
from vmexec.lab import LabVm
from vmexec.zstack.ids import new_uuid

pytestmark = pytest.mark.vm


@pytest.fixture
def server(server_factory: ServerFactory, lab_vms: list[LabVm]) -> RunningServer:
    return server_factory(libvirt_uri=lab_vms[0].uri)


def _sh(client: httpx.Client, vm: LabVm, command: str) -> str:
    reply = client.put(EXEC, json=body(command, vm=vm.uuid, commandTimeout=30))
    assert reply.status_code == 200, reply.text
    assert reply.json()["exitCode"] == 0, reply.text
    return str(reply.json()["stdout"])


def _count(client: httpx.Client, vm: LabVm, token: str) -> int:
    """How many times a command appended to the guest's counter file ``token``."""
    return int(_sh(client, vm, f"cat /tmp/count-{token} 2>/dev/null | wc -l").strip())


def _clock_offset(client: httpx.Client, vm: LabVm, now: str) -> tuple[float, float]:
    """The guest's clock minus this host's, and the error bound of that (half the round
    trip of the exec that read it)."""
    before = time.time()
    guest = float(_sh(client, vm, now))
    after = time.time()
    return guest - (before + after) / 2, (after - before) / 2


def _output(received: list[tuple[str, dict[str, Any], float]]) -> dict[str, str]:
    """Each target's output text from the events, by execution."""
    texts: dict[str, str] = {}
    for kind, data, _ in received:
        if kind == "output":
            texts[data["executionUuid"]] = texts.get(data["executionUuid"], "") + data["text"]
    return texts


def test_max_concurrency_1_never_overlaps_by_the_guests_clocks(
        server: RunningServer, lab_vms: list[LabVm]) -> None:
    vms = lab_vms[:3]
    # The guests' busybox date has no sub-second format; their python3 has.
    now = "python3 -c 'import time; print(time.time())'"
    with server.client() as client:
        # TCG guests' clocks drift apart (0.3 s seen in CI): each guest's offset from this
        # host's clock, within half the exec's round trip, puts their times on one clock.
        offsets = [_clock_offset(client, vm, now) for vm in vms]
        uuid = start_run(client, f"{now}; sleep 1; {now}",
                         uuids=[vm.uuid for vm in vms], maxConcurrency=1)
        received = events(client, uuid)
        inventory = wait_run(client, uuid)
        targets = get_run(client, uuid)["targets"]
    assert inventory["state"] == "Succeeded", targets
    texts = _output(received)
    by_vm = {vm.uuid: (offset, error) for vm, (offset, error) in zip(vms, offsets, strict=True)}
    spans = []
    for target in targets:
        offset, error = by_vm[target["vmInstanceUuid"]]
        start, end = (float(line) - offset for line in texts[target["executionUuid"]].split())
        spans.append((start, end, error))
    # In the order of the targets, each started after the previous one ended (on one clock,
    # but for the offsets' uncertainty).
    for (_, previous_end, e1), (start, _, e2) in itertools.pairwise(spans):
        assert start > previous_end - (e1 + e2), spans
    # The events say the same: a target starts only after the previous one finished.
    order = [(k, d["vmInstanceUuid"]) for k, d, _ in received
             if k in ("targetStarted", "targetFinished")]
    assert order == [(k, vm.uuid) for vm in vms for k in ("targetStarted", "targetFinished")]
    assert received[-1][0] == "runFinished"


def test_max_errors_0_and_a_failing_command_skip_the_rest(server: RunningServer,
                                                          lab_vms: list[LabVm]) -> None:
    token = new_uuid()
    vms = lab_vms[:3]
    with server.client() as client:
        uuid = start_run(client, f"echo x >> /tmp/count-{token}; exit 3",
                         uuids=[vm.uuid for vm in vms], maxConcurrency=1, maxErrors=0)
        inventory = wait_run(client, uuid)
        targets = get_run(client, uuid)["targets"]
        counts = [_count(client, vm, token) for vm in vms]
    assert inventory["state"] == "Failed"
    assert [t["state"] for t in targets] == ["Failed", "Skipped", "Skipped"]
    assert targets[0]["exitCode"] == 3
    assert counts == [1, 0, 0]  # the skipped VMs never ran it


def test_conditions_select_the_lab_vms(server: RunningServer, lab_vms: list[LabVm]) -> None:
    prefix = lab_vms[0].name.rsplit("-", 1)[0]
    with server.client() as client:
        uuid = start_run(client, "hostname", conditions=[f"name~={prefix}-_",
                                                         "state=Running"])
        received = events(client, uuid)
        targets = get_run(client, uuid)["targets"]
    names = sorted(vm.name for vm in lab_vms)
    assert [t["vmInstanceName"] for t in targets] == names
    texts = _output(received)
    assert sorted(texts[t["executionUuid"]] for t in targets) == [f"{n}\n" for n in names]


def test_a_restart_of_vmexec_mid_run_loses_nothing_and_runs_nothing_twice(
        server_factory: ServerFactory, lab_vms: list[LabVm]) -> None:
    token = new_uuid()
    vms = [*lab_vms[:3], lab_vms[0]]  # vm 1 twice: it must count 2
    first = server_factory(libvirt_uri=lab_vms[0].uri)
    with first.client() as client:
        uuid = start_run(client, f"echo x >> /tmp/count-{token}; sleep 4; echo done",
                         uuids=[vm.uuid for vm in vms], maxConcurrency=2)
        wait_until(lambda: get_run(client, uuid)["targetCounts"]["Running"] == 2,
                   what="two targets running")
    first.stop()  # two targets run in their guests, two are pending
    second = server_factory(libvirt_uri=lab_vms[0].uri)  # same database
    with httpx.Client(base_url=second.url, headers=first.auth, timeout=120) as client:
        inventory = wait_run(client, uuid, timeout=120)
        targets = get_run(client, uuid)["targets"]
        counts = {vm.name: _count(client, vm, token) for vm in lab_vms[:3]}
        received = events(client, uuid)
    assert inventory["state"] == "Succeeded", targets
    assert all(t["exitCode"] == 0 for t in targets)
    assert counts == {lab_vms[0].name: 2, lab_vms[1].name: 1, lab_vms[2].name: 1}
    # Every target's whole output was kept, the recovered ones' included.
    assert sorted(_output(received).values()) == ["done\n"] * 4


@pytest.mark.skipif(not hasattr(Executor, "cancel"),
                    reason="needs the engine's cancel (issue 11, engine part)")
def test_cancel_mid_run_stops_the_running_and_skips_the_rest(server: RunningServer,
                                                             lab_vms: list[LabVm]) -> None:
    token = new_uuid()
    vms = lab_vms[:3]
    with server.client() as client:
        uuid = start_run(client, f"echo x >> /tmp/count-{token}; sleep 60",
                         uuids=[vm.uuid for vm in vms], maxConcurrency=1)
        wait_until(lambda: _count(client, vms[0], token) == 1, timeout=60,
                   what="the first target running in its guest")
        reply = client.put(f"/zstack/v1/vm-instances/commands/runs/{uuid}/actions",
                           json={"cancelGuestVmCommandRun": {}})
        assert reply.status_code == 200, reply.text
        inventory = reply.json()["inventory"]
        targets = get_run(client, uuid)["targets"]
        counts = [_count(client, vm, token) for vm in vms]
        # "[c]ount" matches the command's processes, not this one's own command line.
        left = _sh(client, vms[0], f"grep -l '[c]ount-{token}' /proc/[0-9]*/cmdline "
                                   "2>/dev/null || true")
    assert inventory["state"] == "Cancelled"
    assert [t["state"] for t in targets] == ["Cancelled", "Skipped", "Skipped"]
    assert counts == [1, 0, 0]
    assert left.strip() == ""  # the command's processes are gone from the guest
