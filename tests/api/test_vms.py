"""QueryVmInstance, GetVmQga/SetVmQga and GetVmGuestToolsInfo over real HTTP, on lab VMs."""

from __future__ import annotations

import re
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import libvirt
import pytest
from fixtures.server import RunningServer, ServerFactory, start_server

from vmexec.config import Settings
from vmexec.lab import LabVm
from vmexec.services.inventory import Inventory

pytestmark = pytest.mark.vm

VMS = "/zstack/v1/vm-instances"
ZSTACK_DATE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M$")
VM_CLASS = "org.zstack.header.vm.VmInstanceInventory"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, lab_vms: list[LabVm]) -> Iterator[
        RunningServer]:
    """One server for the module; its resync is slowed so that state changes seen by the
    tests come from libvirt's lifecycle events (or an on-miss sync), not the timer."""
    db = tmp_path_factory.mktemp("vms") / "vmexec.db"
    running = start_server(Settings(db=f"sqlite:///{db}", port=0, admin_password="password"),
                           inventory=partial(Inventory, resync_interval=3600))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def query(client: httpx.Client, *params: tuple[str, str], path: str = VMS) -> dict[str, Any]:
    reply = client.get(path, params=list(params))
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def names(body: dict[str, Any]) -> list[str]:
    return [inv["name"] for inv in body["inventories"]]


def test_query_by_name_gives_the_full_inventory(client: httpx.Client,
                                                lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0]
    body = query(client, ("q", f"name={vm.name}"))
    assert body["schema"] == {"inventories[0]": VM_CLASS}
    assert "total" not in body
    [inv] = body["inventories"]
    assert inv["uuid"] == vm.uuid == vm.libvirt_uuid.replace("-", "")
    assert inv["name"] == vm.name
    assert inv["state"] == "Running"
    assert inv["type"] == "UserVm"
    assert inv["hypervisorType"] == "KVM"
    assert inv["platform"] == "Linux"
    assert inv["architecture"] == "x86_64"
    assert inv["cpuNum"] >= 1
    assert inv["memorySize"] >= 64 * 1024 * 1024
    assert inv["cpuSpeed"] == 0
    assert re.fullmatch(r"[0-9a-f]{32}", inv["hostUuid"])
    assert inv["lastHostUuid"] == inv["hostUuid"]
    assert ZSTACK_DATE.match(inv["createDate"]) and ZSTACK_DATE.match(inv["lastOpDate"])
    assert inv["vmNics"] == [] and inv["allVolumes"] == []
    # Null fields are left out, never sent as null.
    assert None not in inv.values()
    assert "zoneUuid" not in inv and "imageUuid" not in inv


def test_query_one_by_uuid(client: httpx.Client, lab_vms: list[LabVm]) -> None:
    vm = lab_vms[1]
    assert names(query(client, path=f"{VMS}/{vm.uuid}")) == [vm.name]
    # libvirt's dashed form names the same VM.
    assert names(query(client, path=f"{VMS}/{vm.libvirt_uuid}")) == [vm.name]
    assert query(client, path=f"{VMS}/{'0' * 32}") == {"inventories": [], "schema": {}}


def test_state_filter(client: httpx.Client, lab_vms: list[LabVm],
                      lab_variants: dict[str, LabVm]) -> None:
    running = names(query(client, ("q", "state=Running")))
    assert {vm.name for vm in lab_vms} <= set(running)
    assert lab_variants["stopped"].name not in running
    stopped = query(client, ("q", f"uuid={lab_variants['stopped'].uuid}"))["inventories"]
    assert [inv["state"] for inv in stopped] == ["Stopped"]


def test_in_and_not_in(client: httpx.Client, lab_vms: list[LabVm]) -> None:
    a, b, c = (vm.name for vm in lab_vms)
    assert sorted(names(query(client, ("q", f"name?={a},{b}")))) == sorted([a, b])
    rest = names(query(client, ("q", f"name!?={a},{b}"), ("q", "name~=vmexec-lab-_")))
    assert rest == [c]


def test_like_sort_limit_start(client: httpx.Client, lab_vms: list[LabVm]) -> None:
    lab_names = sorted(vm.name for vm in lab_vms)  # vmexec-lab-1..3
    like = ("q", "name~=vmexec-lab-_")
    assert names(query(client, like, ("sort", "-name"))) == lab_names[::-1]
    assert names(query(client, like, ("sort", "+name"), ("limit", "2"))) == lab_names[:2]
    assert names(query(client, like, ("sort", "+name"), ("limit", "2"), ("start", "2"))) == \
        lab_names[2:]
    assert names(query(client, ("q", "name!~=vmexec-lab-%"), like)) == []


def test_count_and_reply_with_count(client: httpx.Client, lab_vms: list[LabVm]) -> None:
    like = ("q", "name~=vmexec-lab-_")
    assert query(client, like, ("count", "true")) == {"total": 3, "schema": {}}
    body = query(client, like, ("replyWithCount", "true"), ("limit", "1"))
    assert body["total"] == 3
    assert len(body["inventories"]) == 1
    assert body["schema"] == {"inventories[0]": VM_CLASS}


def test_fields(client: httpx.Client, lab_vms: list[LabVm]) -> None:
    body = query(client, ("q", f"uuid={lab_vms[0].uuid}"), ("fields", "name,state"))
    assert body["inventories"] == [{"name": lab_vms[0].name, "state": "Running"}]


def test_numeric_comparison(client: httpx.Client, lab_vms: list[LabVm]) -> None:
    memory = query(client, ("q", f"uuid={lab_vms[0].uuid}"))["inventories"][0]["memorySize"]
    assert lab_vms[0].name in names(query(client, ("q", f"memorySize>={memory}")))
    assert lab_vms[0].name not in names(query(client, ("q", f"memorySize>{memory}")))


@pytest.mark.parametrize(("params", "status", "fragment"), [
    ([("q", "colour=red")], 503, "unknown field 'colour'"),
    ([("sort", "-colour")], 503, "unknown field 'colour'"),
    ([("q", "cpuNum>many")], 503, "is not a number"),
    ([("q", "just-text")], 400, "invalid query condition"),
    ([("limit", "lots")], 400, "'limit' must be an integer"),
])
def test_bad_queries(client: httpx.Client, params: list[tuple[str, str]], status: int,
                     fragment: str) -> None:
    reply = client.get(VMS, params=params)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["code"] == "SYS.1007"
    assert fragment in error["details"]


def test_query_needs_a_session(server: RunningServer) -> None:
    with server.client(authenticated=False) as anonymous:
        assert anonymous.get(VMS).status_code == 400
        reply = anonymous.get(VMS, headers={"Authorization": "OAuth " + "f" * 32})
        assert reply.status_code == 503
        assert reply.json()["error"]["code"] == "ID.1001"


# --- VMs appearing, changing and going away while the server runs --------------------------

def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


@pytest.fixture
def scratch_domain(lab_vms: list[LabVm]) -> Iterator[libvirt.virDomain]:
    """A tiny domain (no disk, 32 MiB, TCG) defined behind the server's back, removed after."""
    name = f"vmexec-inventory-test-{uuidlib.uuid4().hex[:8]}"
    conn = libvirt.open(lab_vms[0].uri)
    xml = f"""<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory>
      <vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>
      <description>scratch</description><devices/></domain>"""
    domain = conn.defineXML(xml)
    try:
        yield domain
    finally:
        try:
            if domain.isActive():
                domain.destroy()
            domain.undefine()
        except libvirt.libvirtError:
            pass  # the test removed it already
        conn.close()


def test_vm_defined_after_start_appears_and_follows_lifecycle(
        client: httpx.Client, scratch_domain: libvirt.virDomain) -> None:
    uuid = scratch_domain.UUIDString().replace("-", "")
    # Defined but never started: found at once (the miss triggers a sync), and Stopped.
    [inv] = query(client, ("q", f"name={scratch_domain.name()}"))["inventories"]
    assert inv["uuid"] == uuid
    assert inv["state"] == "Stopped"
    assert inv["description"] == "scratch"
    first_seen = inv["createDate"]

    def state() -> str | None:
        found = query(client, path=f"{VMS}/{uuid}")["inventories"]
        return found[0]["state"] if found else None

    # Started and destroyed behind vmexec's back: lifecycle events update the state (the
    # server's resync timer is an hour, so nothing else could).
    scratch_domain.create()
    _wait_for(lambda: state() == "Running")
    scratch_domain.destroy()
    _wait_for(lambda: state() == "Stopped")
    [inv] = query(client, path=f"{VMS}/{uuid}")["inventories"]
    assert inv["createDate"] == first_seen

    scratch_domain.undefine()
    _wait_for(lambda: state() is None)


# --- guest agent switch and live agent info ------------------------------------------------

def test_qga_switch_round_trip(client: httpx.Client, lab_vms: list[LabVm]) -> None:
    vm = lab_vms[2]
    assert client.get(f"{VMS}/{vm.uuid}/qga").json() == {"enable": True}
    try:
        reply = client.put(f"{VMS}/{vm.uuid}/actions", json={"setVmQga": {"enable": False}})
        assert (reply.status_code, reply.json()) == (200, {})
        assert client.get(f"{VMS}/{vm.uuid}/qga").json() == {"enable": False}
    finally:
        client.put(f"{VMS}/{vm.uuid}/actions", json={"setVmQga": {"enable": True}})
    assert client.get(f"{VMS}/{vm.uuid}/qga").json() == {"enable": True}


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"startVmInstance": {}}, 400, "known action"),
    ({}, 400, "no action"),
    ({"setVmQga": {"enable": "yes"}}, 400, "enable"),
    ({"setVmQga": {}}, 503, "enable"),
])
def test_bad_actions(client: httpx.Client, lab_vms: list[LabVm], body: dict[str, Any],
                     status: int, fragment: str) -> None:
    reply = client.put(f"{VMS}/{lab_vms[0].uuid}/actions", json=body)
    assert reply.status_code == status, reply.text
    assert fragment in reply.json()["error"]["details"]


def test_unknown_vm(client: httpx.Client) -> None:
    unknown = "0" * 31 + "1"
    for reply in (client.get(f"{VMS}/{unknown}/qga"),
                  client.get(f"{VMS}/{unknown}/guest-tools-infos"),
                  client.put(f"{VMS}/{unknown}/actions", json={"setVmQga": {"enable": True}})):
        assert reply.status_code == 503
        error = reply.json()["error"]
        assert error["code"] == "SYS.1007"
        assert unknown in error["details"]


def test_guest_tools_info(client: httpx.Client, lab_vms: list[LabVm],
                          lab_variants: dict[str, LabVm]) -> None:
    def info(vm: LabVm) -> dict[str, Any]:
        reply = client.get(f"{VMS}/{vm.uuid}/guest-tools-infos")
        assert reply.status_code == 200, reply.text
        body: dict[str, Any] = reply.json()
        return body

    running = info(lab_vms[0])
    assert running["status"] == "Running"
    assert re.match(r"^\d+\.\d+", running["version"])
    assert running["features"] == {"guestExec": True, "guestFileTransfer": True}
    assert info(lab_variants["noexec"])["features"]["guestExec"] is False
    assert info(lab_variants["nochannel"]) == {"status": "Not Connected", "features": {}}
    assert info(lab_variants["stopped"]) == {"status": "Not Connected", "features": {}}
    assert info(lab_variants["noagent"]) == {"status": "NotRunning", "features": {}}


def test_qga_switch_and_dates_survive_a_restart(server_factory: ServerFactory,
                                                tmp_path: Path, lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0]
    db = tmp_path / "restart.db"
    first = server_factory(db_file=db)
    with first.client() as c:
        c.put(f"{VMS}/{vm.uuid}/actions", json={"setVmQga": {"enable": False}})
        created = c.get(f"{VMS}/{vm.uuid}").json()["inventories"][0]["createDate"]
    first.stop()
    time.sleep(1.1)  # a re-discovered VM would get a later createDate
    second = server_factory(db_file=db)
    with second.client() as c:
        assert c.get(f"{VMS}/{vm.uuid}/qga").json() == {"enable": False}
        assert c.get(f"{VMS}/{vm.uuid}").json()["inventories"][0]["createDate"] == created
        hosts = c.get("/zstack/v1/hosts").json()["inventories"]
        assert len(hosts) == 1  # the local host is registered once, not at every start
