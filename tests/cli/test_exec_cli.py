"""``vmexec exec VM -- COMMAND``: output as it is, the command's exit status, options, errors."""

from __future__ import annotations

import json

import pytest

from cli.runner import Cli, one_error_line
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm


def test_exit_code_passes_through(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    run = logged_in("exec", lab_vms[0].name, "--", "exit 3")
    assert run.status == 3, run
    assert run.out == b"" and run.err == b""


def test_stdout_and_stderr_come_out_separately_and_exactly(logged_in: Cli,
                                                           lab_vms: list[LabVm]) -> None:
    script = "printf 'out 1\\nout 2'; printf 'err é\\n' >&2; printf '\\r\\n'"
    run = logged_in("exec", lab_vms[0].name, "--", script)
    assert run.status == 0, run
    assert run.out == b"out 1\nout 2\r\n"
    assert run.err == "err é\n".encode()


def test_vm_by_name_and_by_uuid_reach_that_guest(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    for vm in lab_vms[:2]:
        by_name = logged_in("exec", vm.name, "--", "hostname")
        by_uuid = logged_in("exec", vm.uuid, "--", "hostname")
        assert by_name.stdout == by_uuid.stdout == f"{vm.name}\n", (by_name, by_uuid)


def test_command_words_are_joined_into_one_script(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    run = logged_in("exec", lab_vms[0].name, "--", "echo", "a  b", "-n", "|", "tr", "a", "x")
    assert run.status == 0, run
    assert run.stdout == "x b -n\n"  # as ssh does: the words are joined with spaces


def test_a_command_killed_by_a_signal_exits_128_plus_the_signal(
        logged_in: Cli, lab_vms: list[LabVm]) -> None:
    run = logged_in("exec", lab_vms[0].name, "--", "kill -TERM $$")
    assert run.status == 128 + 15, run


def test_timeout_exits_124_with_the_output_so_far(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    run = logged_in("exec", lab_vms[0].name, "--timeout", "2", "--",
                    "echo started; sleep 30; echo never")
    assert run.status == 124, run
    assert run.stdout == "started\n"
    # The guest's stderr so far (the shell may report the kill), then vmexec's one line.
    *guest_stderr, last = run.stderr.splitlines()
    assert last.startswith("error: VM.EXEC.1001: "), run
    assert not any(line.startswith("error:") for line in guest_stderr), run


def test_stdin_env_cwd_and_user(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    run = logged_in("exec", lab_vms[1].name, "--stdin", "-", "--env", "GREETING=hi there",
                    "--env", "EMPTY=", "--cwd", "/tmp", "--user", "vmuser", "--",
                    'cat; echo "$GREETING|$EMPTY|$(pwd)|$(id -un)"',
                    input=b"line 1\nline 2\n")
    assert run.status == 0, run
    assert run.stdout == "line 1\nline 2\nhi there||/tmp|vmuser\n"


def test_stdin_text_and_shell(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    run = logged_in("exec", lab_vms[1].name, "--stdin", "given", "--shell", "sh", "--",
                    "read x; echo $x")
    assert run.status == 0, run
    assert run.stdout == "given\n"


def test_json_prints_the_full_zstack_result(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0]
    run = logged_in("exec", vm.name, "--json", "--", "echo out; echo err >&2; exit 4")
    assert run.status == 4, run
    result = json.loads(run.stdout)
    assert result["success"] is True
    assert result["stream"] == "standardStream: out, errorStream: err"
    assert result["vmInstance"]["uuid"] == vm.uuid
    assert result["exitCode"] == 4
    assert (result["stdout"], result["stderr"]) == ("out\n", "err\n")
    assert result["timedOut"] is False and isinstance(result["durationMs"], int)


def test_an_unknown_vm_is_one_line_and_exit_1(logged_in: Cli) -> None:
    for ref in ("no-such-vm", "0123456789abcdef0123456789abcdef"):
        run = logged_in("exec", ref, "--", "true")
        assert run.status == 1, run
        assert one_error_line(run) == f"error: no VM has the uuid or name {ref!r}"


def test_a_stopped_vm_is_one_line_with_its_code(logged_in: Cli,
                                                lab_variants: dict[str, LabVm]) -> None:
    run = logged_in("exec", lab_variants["stopped"].name, "--", "true")
    assert run.status == 1, run
    assert one_error_line(run).startswith("error: VM.EXEC.1002: ")


def test_usage_errors_exit_2(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    assert logged_in("exec", lab_vms[0].name).status == 2  # no command
    run = logged_in("exec", lab_vms[0].name, "--env", "NOEQUALS", "--", "true")
    assert run.status == 2
    assert one_error_line(run) == "error: --env takes KEY=VALUE, got 'NOEQUALS'"
