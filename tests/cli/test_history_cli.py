"""``vmexec history``, ``show``, ``logs`` and ``cancel`` on executions and runs, against a real
server and real lab VMs."""

from __future__ import annotations

import json
import random
import signal

import pytest
import yaml

from cli.runner import Cli, one_error_line
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm


def marker() -> str:
    return f"m{random.getrandbits(40):x}"


def executions(cli: Cli, *args: str) -> list[dict[str, object]]:
    run = cli("history", "--json", *args)
    assert run.status == 0, run
    inventories = json.loads(run.stdout)["inventories"]
    assert isinstance(inventories, list)
    return inventories


def test_history_filters_and_formats(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    tag = marker()
    vm = lab_vms[0]
    assert logged_in("exec", vm.name, "--", f"echo {tag} ok").status == 0
    assert logged_in("exec", vm.name, "--", f"echo {tag} bad; exit 4").status == 4
    mine = executions(logged_in, "-q", f"command~=%{tag}%")
    assert [e["state"] for e in mine] == ["Failed", "Succeeded"]  # newest first
    assert all(e["vmInstanceUuid"] == vm.uuid for e in mine)
    failed = executions(logged_in, "-q", f"command~=%{tag}%", "-q", "state=Failed")
    assert [(e["state"], e["exitCode"]) for e in failed] == [("Failed", 4)]
    assert len(executions(logged_in, "-q", f"command~=%{tag}%", "--limit", "1")) == 1
    as_yaml = logged_in("history", "-o", "yaml", "-q", f"command~=%{tag}%")
    assert as_yaml.status == 0, as_yaml
    assert [e["state"] for e in yaml.safe_load(as_yaml.stdout)["inventories"]] == [
        "Failed", "Succeeded"]
    table = logged_in("history", "-q", f"command~=%{tag}%")
    assert table.status == 0, table
    assert table.stdout.splitlines()[0].split() == [
        "UUID", "VM", "STATE", "EXIT", "CREATED", "DURATION", "COMMAND"]
    assert f"{vm.name}" in table.stdout and "Failed" in table.stdout
    bad = logged_in("history", "-q", "noSuchField=1")
    assert bad.status == 1 and one_error_line(bad).startswith("error: SYS.1007: ")


def test_show_and_logs_of_an_execution(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    tag = marker()
    vm = lab_vms[2]
    script = f"printf '{tag} out\\nno newline'; echo {tag} err >&2; exit 2"
    assert logged_in("exec", vm.name, "--", script).status == 2
    (execution,) = executions(logged_in, "-q", f"command~=%{tag}%")
    uuid = str(execution["uuid"])
    shown = logged_in("show", uuid)
    assert shown.status == 0, shown
    for expected in (f"Execution: {uuid}", f"VM:        {vm.name} ({vm.uuid})",
                     "State:     Failed", "Exit code: 2", f"{tag} out", f"{tag} err"):
        assert expected in shown.stdout, shown
    logs = logged_in("logs", uuid)
    assert logs.status == 0, logs
    assert (logs.out, logs.err) == (f"{tag} out\nno newline".encode(), f"{tag} err\n".encode())
    # -f on an ended execution: everything, then the command's status.
    followed = logged_in("logs", uuid, "-f")
    assert (followed.status, followed.out) == (2, logs.out), followed
    as_json = logged_in("show", uuid, "--json")
    assert json.loads(as_json.stdout)["inventory"]["stdout"] == f"{tag} out\nno newline"
    unknown = logged_in("show", "0" * 32)
    assert unknown.status == 1
    assert one_error_line(unknown) == (
        f"error: SYS.1003: no execution or run has the uuid {'0' * 32}")


def test_cancel_a_running_execution(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    tag = marker()
    vm = lab_vms[0]
    proc = logged_in.start("exec", vm.name, "--", f"echo {tag}; sleep 600")
    assert proc.stdout is not None
    assert proc.stdout.readline() == f"{tag}\n".encode()
    (execution,) = executions(logged_in, "-q", f"command~=%{tag}%")
    assert execution["state"] == "Running"
    cancelled = logged_in("cancel", str(execution["uuid"]))
    assert cancelled.status == 0, cancelled
    assert cancelled.stdout == f"execution {execution['uuid']}: Cancelled\n"
    out, err = proc.communicate(timeout=120)
    # The CLI that ran it sees the end: cancelled, not by its own Ctrl-C.
    assert proc.returncode == 130, (out, err)
    again = logged_in("cancel", str(execution["uuid"]))  # idempotent
    assert again.stdout == cancelled.stdout, again


def test_runs_in_history_show_and_logs(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    tag = marker()
    names = [vm.name for vm in lab_vms]
    assert logged_in("exec", *names, "--", f"echo {tag} $(hostname)").status == 0
    runs = logged_in("history", "--runs", "--json", "-q", f"command~=%{tag}%")
    assert runs.status == 0, runs
    (run,) = json.loads(runs.stdout)["inventories"]
    assert run["state"] == "Succeeded"
    uuid = str(run["uuid"])
    shown = logged_in("show", uuid)
    assert shown.status == 0, shown
    assert f"Run:         {uuid}" in shown.stdout
    assert all(f"{tag} {n}" in shown.stdout for n in names), shown
    logs = logged_in("logs", uuid)
    assert logs.status == 0, logs
    assert sorted(logs.stdout.splitlines()) == [f"{n} | {tag} {n}" for n in names]
    followed = logged_in("logs", uuid, "-f")
    assert followed.status == 0, followed
    assert sorted(followed.stdout.splitlines()) == [f"{n} | {tag} {n}" for n in names]
    table = logged_in("history", "--runs", "-q", f"command~=%{tag}%")
    assert "3 targets: 3 succeeded" in table.stdout, table


def test_ctrl_c_on_logs_f_stops_following_and_the_command_goes_on(
        logged_in: Cli, lab_vms: list[LabVm]) -> None:
    tag = marker()
    vm = lab_vms[1]
    runner = logged_in.start("exec", vm.name, "--", f"echo {tag}; sleep 600")
    assert runner.stdout is not None
    assert runner.stdout.readline() == f"{tag}\n".encode()
    (execution,) = executions(logged_in, "-q", f"command~=%{tag}%")
    follower = logged_in.start("logs", str(execution["uuid"]), "-f")
    assert follower.stdout is not None
    assert follower.stdout.readline() == f"{tag}\n".encode()
    follower.send_signal(signal.SIGINT)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 130, (out, err)
    assert f"stopped following {execution['uuid']}; it goes on".encode() in err
    (still,) = executions(logged_in, "-q", f"uuid={execution['uuid']}")
    assert still["state"] == "Running"
    runner.send_signal(signal.SIGINT)  # the CLI that started it cancels it
    runner.communicate(timeout=60)
    assert runner.returncode == 130
    (ended,) = executions(logged_in, "-q", f"uuid={execution['uuid']}")
    assert ended["state"] == "Cancelled"


def test_logs_json_lines(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    tag = marker()
    vm = lab_vms[0]
    assert logged_in("exec", vm.name, "--", f"echo {tag}; echo e >&2; exit 5").status == 5
    (execution,) = executions(logged_in, "-q", f"command~=%{tag}%")
    followed = logged_in("logs", str(execution["uuid"]), "-f", "--json")
    assert followed.status == 5, followed
    events = [json.loads(line) for line in followed.stdout.splitlines()]
    assert {(e["event"], e["text"]) for e in events[:-1]} == {("stdout", f"{tag}\n"),
                                                             ("stderr", "e\n")}
    assert events[-1]["event"] == "result" and events[-1]["body"]["exitCode"] == 5
    assert events[-1]["offset"] == len(tag) + 3
    stored = logged_in("logs", str(execution["uuid"]), "--json")
    inventory = json.loads(stored.stdout)["inventory"]
    assert (inventory["stdout"], inventory["stderr"]) == (f"{tag}\n", "e\n")
    names = [v.name for v in lab_vms[:2]]
    assert logged_in("exec", *names, "--", f"echo {tag}-run").status == 0
    (run,) = json.loads(logged_in("history", "--runs", "--json", "-q",
                                  f"command~=%{tag}-run%").stdout)["inventories"]
    run_events = [json.loads(line) for line in logged_in(
        "logs", str(run["uuid"]), "-f", "--json").stdout.splitlines()]
    kinds = [e["event"] for e in run_events]
    assert kinds.count("targetStarted") == kinds.count("targetFinished") == 2
    assert kinds[-1] == "runFinished" and run_events[-1]["inventory"]["state"] == "Succeeded"
    assert sorted(e["text"] for e in run_events if e["event"] == "output") == [
        f"{tag}-run\n"] * 2
