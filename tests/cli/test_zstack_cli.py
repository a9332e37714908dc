"""zstack-cli's habit: ``vmexec <ApiName> key=value ...`` prints the ZStack JSON reply."""

from __future__ import annotations

import json

import pytest

from cli.runner import Cli, one_error_line
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm


def test_execute_guest_vm_command_prints_the_zstack_reply(logged_in: Cli,
                                                          lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0]
    run = logged_in("ExecuteGuestVmCommand", f"vmInstanceUuid={vm.uuid}", "platform=Linux",
                    "command=uname -n; echo oops >&2", "commandTimeout=30")
    assert run.status == 0, run
    reply = json.loads(run.stdout)
    assert reply["stream"] == f"standardStream: {vm.name}, errorStream: oops"
    assert reply["vmInstance"]["uuid"] == vm.uuid
    assert reply["vmInstance"]["name"] == vm.name
    assert reply["exitCode"] == 0


def test_execute_guest_vm_command_with_extensions(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    run = logged_in("ExecuteGuestVmCommand", f"vmInstanceUuid={lab_vms[0].uuid}",
                    "platform=Linux", "command=cat; echo $X; exit 7", "stdin=in",
                    'env={"X": "x"}', "systemTags=a,b")
    assert run.status == 0, run  # the API call succeeded; the command's status is in the reply
    reply = json.loads(run.stdout)
    assert (reply["stdout"], reply["exitCode"]) == ("inx\n", 7)


def test_an_unknown_vm_uuid_is_the_servers_error_in_one_line(logged_in: Cli) -> None:
    run = logged_in("ExecuteGuestVmCommand", "vmInstanceUuid=" + "0" * 32, "platform=Linux",
                    "command=true")
    assert run.status == 1
    assert one_error_line(run) == (
        f"error: SYS.1007: resource[uuid:{'0' * 32}, type:VmInstanceVO] is not found")


def test_bad_parameters_are_usage_errors(logged_in: Cli) -> None:
    run = logged_in("ExecuteGuestVmCommand", "vmInstanceUuid=x", "comand=true")
    assert run.status == 2
    assert one_error_line(run).startswith("error: unknown parameter 'comand'")
    run = logged_in("ExecuteGuestVmCommand", "commandTimeout=soon")
    assert run.status == 2
    assert one_error_line(run) == "error: commandTimeout must be an integer, got 'soon'"


def test_log_in_by_account_query_and_log_out(cli: Cli, lab_vms: list[LabVm]) -> None:
    run = cli("LogInByAccount", "accountName=admin", "password=password")
    assert run.status == 0, run
    session = json.loads(run.stdout)["inventory"]["uuid"]
    assert json.loads(cli.session_file.read_text())["session"] == session

    vm = lab_vms[2]
    run = cli("QueryVmInstance", f"name={vm.name}", "fields=uuid,name")
    assert run.status == 0, run
    assert json.loads(run.stdout)["inventories"] == [{"uuid": vm.uuid, "name": vm.name}]
    run = cli("QueryVmInstance", f"conditions=uuid={vm.uuid}", "count=true")
    assert json.loads(run.stdout)["total"] == 1
    run = cli("QueryHost", "name=localhost")
    assert [h["name"] for h in json.loads(run.stdout)["inventories"]] == ["localhost"]

    run = cli("LogOut")
    assert (run.status, json.loads(run.stdout)) == (0, {})
    assert cli("QueryVmInstance").status == 2
