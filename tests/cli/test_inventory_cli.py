"""``vmexec vm list`` and ``vmexec host add/list/delete``."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fixtures.server import ServerFactory

from cli.runner import Cli, one_error_line
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm


def test_vm_list_is_a_table_of_the_vms(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    run = logged_in("vm", "list")
    assert run.status == 0, run
    header, _rule, *rows = run.stdout.splitlines()
    assert header.split() == ["UUID", "NAME", "STATE", "HOST", "CPU", "MEMORY"]
    by_uuid = {row.split()[0]: row.split() for row in rows}
    for vm in lab_vms:
        # The local host is named "localhost"; memory is shown with its unit.
        assert by_uuid[vm.uuid][1:5] == [vm.name, "Running", "localhost", "1"]
        assert " ".join(by_uuid[vm.uuid][5:]) == "256 MiB"


def test_vm_list_json_with_conditions(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    vm = lab_vms[1]
    run = logged_in("vm", "list", "--json", "-q", f"name={vm.name}", "-q", "state=Running")
    assert run.status == 0, run
    reply = json.loads(run.stdout)
    assert [inv["uuid"] for inv in reply["inventories"]] == [vm.uuid]
    assert reply["schema"] == {"inventories[0]": "org.zstack.header.vm.VmInstanceInventory"}


def test_vm_and_host_lists_in_yaml(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0]
    run = logged_in("vm", "list", "-o", "yaml", "-q", f"name={vm.name}")
    assert run.status == 0, run
    assert [(i["uuid"], i["name"]) for i in yaml.safe_load(run.stdout)["inventories"]] == [
        (vm.uuid, vm.name)]
    hosts = logged_in("host", "list", "-o", "yaml")
    assert hosts.status == 0, hosts
    assert "localhost" in [h["name"] for h in yaml.safe_load(hosts.stdout)["inventories"]]
    assert logged_in("host", "list", "-o", "xml").status == 2


def test_a_bad_condition_is_one_line_with_the_code(logged_in: Cli) -> None:
    run = logged_in("vm", "list", "-q", "noSuchField=1")
    assert run.status == 1, run
    assert one_error_line(run).startswith("error: SYS.1007: ")


@pytest.fixture
def agent_dir() -> Iterator[Path]:
    """A directory of agent sockets holding one named like a lab VM. Plain listening sockets:
    nothing here talks to an agent; they only give the server a second VM of that name."""
    base = Path(tempfile.mkdtemp(prefix="vmx-"))  # short: unix socket paths are limited
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(base / "vmexec-lab-1.qga"))
    sock.listen()
    yield base
    sock.close()
    shutil.rmtree(base, ignore_errors=True)


def test_host_add_list_delete_and_an_ambiguous_vm_name(
        server_factory: ServerFactory, tmp_path: Path, agent_dir: Path,
        lab_vms: list[LabVm]) -> None:
    cli = Cli(server_factory().url, tmp_path / "config")
    cli.login()
    added = cli("host", "add", "--uri", f"unix://{agent_dir}", "--name", "sockets", "--json")
    assert added.status == 0, added
    host = json.loads(added.stdout)["inventory"]
    assert (host["name"], host["status"]) == ("sockets", "Connected")

    listed = cli("host", "list")
    assert listed.status == 0, listed
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[2:]}
    assert rows[host["uuid"]][1:] == ["sockets", "Connected", "Enabled", f"unix://{agent_dir}"]
    assert any(row[1] == "localhost" for row in rows.values())

    # Now two VMs are named vmexec-lab-1: a name cannot choose, a uuid can.
    ambiguous = cli("exec", "vmexec-lab-1", "--", "hostname")
    assert ambiguous.status == 1
    line = one_error_line(ambiguous)
    assert line.startswith("error: 2 VMs are named 'vmexec-lab-1' (") and lab_vms[0].uuid in line
    assert cli("exec", lab_vms[0].uuid, "--", "hostname").stdout == "vmexec-lab-1\n"

    deleted = cli("host", "delete", host["uuid"])
    assert deleted.status == 0, deleted
    assert host["uuid"] not in cli("host", "list").stdout
    assert cli("exec", "vmexec-lab-1", "--", "hostname").stdout == "vmexec-lab-1\n"


def test_host_add_needs_an_address(logged_in: Cli) -> None:
    run = logged_in("host", "add")
    assert run.status == 2
    assert one_error_line(run) == "error: give --ip (with --user) or --uri"


def test_an_unreachable_host_is_one_line_with_the_code(logged_in: Cli) -> None:
    run = logged_in("host", "add", "--uri", "unix:///nonexistent/vmexec-test")
    assert run.status == 1, run
    assert one_error_line(run).startswith("error: SYS.")
