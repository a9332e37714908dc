"""``vmexec exec VM1 VM2 'glob' -q COND -- CMD``: a run over several lab VMs, each line after its
VM's name, a summary, exit 0 only when every VM succeeded; real server, real lab VMs."""

from __future__ import annotations

import json
import os
import pty
import random
import signal
import subprocess

import pytest

from cli.runner import VMEXEC, Cli, one_error_line, processes_running
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm

HOSTNAME_SCRIPT = "echo hi from $(hostname)"


def summary_rows(stderr: str, names: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """The summary table's rows by VM name (columns VM, STATE, EXIT, ERROR, EXECUTION),
    of the lab VMs or of ``names``."""
    rows = {}
    for line in stderr.splitlines():
        words = line.split()
        if len(words) == 5 and (words[0] in names or (not names
                                and words[0].startswith("vmexec-lab-"))):
            rows[words[0]] = words[1:]
    return rows


def test_several_vms_print_prefixed_lines_and_a_summary(logged_in: Cli,
                                                        lab_vms: list[LabVm]) -> None:
    names = [vm.name for vm in lab_vms]
    run = logged_in("exec", *names, "--", HOSTNAME_SCRIPT)
    assert run.status == 0, run
    assert sorted(run.stdout.splitlines()) == [f"{n} | hi from {n}" for n in names]
    rows = summary_rows(run.stderr)
    assert {n: rows[n][:2] for n in names} == {n: ["Succeeded", "0"] for n in names}, run
    assert "3 targets: 3 succeeded" in run.stderr


def test_one_vm_failing_makes_the_exit_status_1(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    failing = lab_vms[1].name
    run = logged_in("exec", "vmexec-lab-[123]", "--",
                    f"echo out; echo err >&2; test $(hostname) != {failing}")
    assert run.status == 1, run
    rows = summary_rows(run.stderr)
    assert rows[failing][:2] == ["Failed", "1"], run
    assert all(rows[vm.name][:2] == ["Succeeded", "0"] for vm in lab_vms if vm.name != failing)
    # stdout and stderr lines keep their stream, each after its VM's name.
    assert sorted(run.stdout.splitlines()) == sorted(f"{vm.name} | out" for vm in lab_vms)
    assert {f"{vm.name} | err" for vm in lab_vms} <= set(run.stderr.splitlines())


def test_globs_and_conditions_select_the_targets(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    first, second = lab_vms[0].name, lab_vms[1].name
    # A glob filtered by a condition (client side), and conditions alone (server side).
    by_glob = logged_in("exec", "vmexec-lab-[123]", "-q", f"name!={second}", "--", "hostname")
    assert by_glob.status == 0, by_glob
    assert sorted(by_glob.stdout.splitlines()) == sorted(
        f"{vm.name} | {vm.name}" for vm in lab_vms if vm.name != second)
    by_query = logged_in("exec", "-q", f"name?={first},{second}", "--", "hostname")
    assert by_query.status == 0, by_query
    assert sorted(by_query.stdout.splitlines()) == [f"{first} | {first}",
                                                    f"{second} | {second}"]
    nothing = logged_in("exec", "vmexec-lab-nothing-*", "--", "true")
    assert nothing.status == 1
    assert nothing.stderr.strip() == "error: no VM name matches 'vmexec-lab-nothing-*'"


def test_no_prefix_and_group(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    names = [vm.name for vm in lab_vms]
    plain = logged_in("exec", *names, "--no-prefix", "--", "hostname")
    assert plain.status == 0, plain
    assert sorted(plain.stdout.splitlines()) == sorted(names)
    # All three run at once and interleave their lines; --group keeps each VM's together.
    grouped = logged_in("exec", *names, "--group", "--parallel", "3", "--",
                        "echo a; sleep 1; echo b; sleep 1; echo c")
    assert grouped.status == 0, grouped
    lines = grouped.stdout.splitlines()
    assert len(lines) == 9, grouped
    for i in range(0, 9, 3):
        name = lines[i].split(" | ")[0]
        assert lines[i:i + 3] == [f"{name} | a", f"{name} | b", f"{name} | c"], grouped


def test_max_errors_skips_the_rest_and_json_prints_the_run(logged_in: Cli,
                                                           lab_vms: list[LabVm]) -> None:
    names = [vm.name for vm in lab_vms]
    run = logged_in("exec", *names, "--parallel", "1", "--max-errors", "0", "--json", "--",
                    "exit 3")
    assert run.status == 1, run
    inventory = json.loads(run.stdout)["inventory"]
    assert inventory["state"] == "Failed"
    states = sorted(t["state"] for t in inventory["targets"])
    assert states == ["Failed", "Skipped", "Skipped"], inventory


def test_bad_limits_are_usage_errors(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    run = logged_in("exec", lab_vms[0].name, lab_vms[1].name, "--parallel", "many", "--",
                    "true")
    assert run.status == 2
    assert "--parallel takes a number or a percentage" in run.stderr


def test_a_terminal_gets_a_progress_bar_and_a_pipe_does_not(logged_in: Cli,
                                                            lab_vms: list[LabVm]) -> None:
    names = [vm.name for vm in lab_vms]
    args = ["exec", *names, "--parallel", "1", "--", "exit 0"]
    # stdout and stderr on a pseudo-terminal, as in an interactive shell.
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([VMEXEC, *args], stdin=subprocess.DEVNULL, stdout=terminal,
                            stderr=terminal, env=logged_in.env(), close_fds=True)
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's other side closed (the CLI ended)
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    assert proc.wait(timeout=120) == 0, seen
    screen = seen.decode(errors="replace")
    assert "3/3" in screen and "done 3  failed 0  running 0  skipped 0" in screen, screen
    assert "done 0  failed 0" in screen, screen  # drawn while the run went on
    piped = logged_in(*args)
    assert piped.status == 0, piped
    assert "done" not in piped.stderr and "3/3" not in piped.stderr, piped


def test_ctrl_c_cancels_the_run_and_exits_130(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    names = [vm.name for vm in lab_vms]
    seconds = random.randrange(7000, 9000)  # a command line no other test runs
    proc = logged_in.start("exec", *names, "--parallel", "1", "--",
                           f"echo started; sleep {seconds}")
    assert proc.stdout is not None
    first = proc.stdout.readline().decode()
    assert first.endswith(" | started\n"), first
    running = first.split(" | ")[0].strip()
    assert processes_running(logged_in, running, f"sleep {seconds}") == 1
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert b"cancelling run " in err and b"Traceback" not in err, err
    rows = summary_rows(err.decode())
    assert rows[running][0] == "Cancelled", err
    assert sorted(rows[n][0] for n in names if n != running) == ["Skipped", "Skipped"], err
    assert processes_running(logged_in, running, f"sleep {seconds}") == 0


def test_targets_that_cannot_be_resolved_are_one_error_line(logged_in: Cli,
                                                            lab_vms: list[LabVm]) -> None:
    unknown = logged_in("exec", lab_vms[0].name, "nope", "--", "true")
    assert unknown.status == 1
    assert one_error_line(unknown) == "error: no VM has the uuid or name 'nope'"
    empty = logged_in("exec", "-q", "name=no-such-vm-here", "--", "true")
    assert empty.status == 1
    assert one_error_line(empty).startswith("error: SYS.1007: no VM matches the conditions")


def test_a_target_vmexec_cannot_run_fails_with_its_code(
        logged_in: Cli, lab_vms: list[LabVm], lab_variants: dict[str, LabVm]) -> None:
    stopped = lab_variants["stopped"].name
    run = logged_in("exec", lab_vms[0].name, stopped, "--", "true")
    assert run.status == 1, run
    rows = summary_rows(run.stderr, names=(lab_vms[0].name, stopped))
    assert rows[lab_vms[0].name][:2] == ["Succeeded", "0"]
    assert rows[stopped][:3] == ["Failed", "-", "VM.EXEC.1002"], run
