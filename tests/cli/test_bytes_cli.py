"""The CLI pipes bytes (issue 15): the guest's output unchanged, binary stdin, stdin sent when
ours is not a terminal (``-n`` not), and ``vmexec cp`` both ways."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.runner import Cli
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm

WORKDIR = "/tmp/vmexec-bytes-cli"


@pytest.fixture(scope="module")
def vm(logged_in: Cli, lab_vms: list[LabVm]) -> Iterator[LabVm]:
    vm = lab_vms[1]
    assert logged_in("exec", vm.name, "--", f"rm -rf {WORKDIR}; mkdir -p {WORKDIR}").status == 0
    yield vm
    logged_in("exec", vm.name, "--", f"rm -rf {WORKDIR}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_random_bytes_come_out_unchanged(logged_in: Cli, vm: LabVm) -> None:
    # Issue 15: 3,000 random bytes came out as 5,397 (each byte that is not UTF-8 as U+FFFD).
    made = logged_in("exec", vm.name, "--", f"head -c 3000 /dev/urandom > {WORKDIR}/r; "
                                            f"sha256sum < {WORKDIR}/r")
    digest = made.stdout.split()[0]
    run = logged_in("exec", vm.name, "--", f"cat {WORKDIR}/r; cat {WORKDIR}/r >&2")
    assert run.status == 0, run
    assert len(run.out) == 3000 and sha256(run.out) == digest
    assert sha256(run.err) == digest


def test_stdin_dash_takes_bytes_that_are_not_utf8(logged_in: Cli, vm: LabVm) -> None:
    # Issue 15: `--stdin -` refused data that is not UTF-8.
    data = os.urandom(100_000)
    run = logged_in("exec", vm.name, "--stdin", "-", "--", "sha256sum", input=data)
    assert run.status == 0, run
    assert run.stdout.split()[0] == sha256(data)


def test_a_piped_stdin_is_sent_as_ssh_does(logged_in: Cli, vm: LabVm) -> None:
    # Issue 15: `echo hi | vmexec exec vm -- cat` printed nothing.
    run = logged_in("exec", vm.name, "--", "cat", input=b"hi\n")
    assert run.status == 0, run
    assert run.out == b"hi\n"
    binary = bytes(range(256)) * 8
    assert logged_in("exec", vm.name, "--", "cat", input=binary).out == binary


def test_no_stdin_with_n(logged_in: Cli, vm: LabVm) -> None:
    run = logged_in("exec", "-n", vm.name, "--", "cat; echo end", input=b"not sent\n")
    assert run.status == 0, run
    assert run.out == b"end\n"
    both = logged_in("exec", "-n", "--stdin", "-", vm.name, "--", "cat")
    assert both.status == 2 and "contradict" in both.stderr


def test_cp_in_and_out_is_byte_exact(logged_in: Cli, vm: LabVm, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 11)
    local = tmp_path / "in.bin"
    local.write_bytes(data)
    pushed = logged_in("cp", str(local), f"{vm.name}:{WORKDIR}/in.bin", "--mode", "0600")
    assert pushed.status == 0, pushed
    assert pushed.out == b"" and pushed.err == b""  # no progress bar without a terminal
    in_guest = logged_in("exec", vm.name, "--", f"sha256sum < {WORKDIR}/in.bin; "
                                                f"stat -c %a {WORKDIR}/in.bin")
    assert in_guest.stdout.split() == [sha256(data), "-", "600"]
    # Out to a file, to a directory (the guest file's name), to stdout.
    out = tmp_path / "out.bin"
    assert logged_in("cp", f"{vm.name}:{WORKDIR}/in.bin", str(out)).status == 0
    assert sha256(out.read_bytes()) == sha256(data)
    directory = tmp_path / "dir"
    directory.mkdir()
    assert logged_in("cp", f"{vm.name}:{WORKDIR}/in.bin", str(directory)).status == 0
    assert sha256((directory / "in.bin").read_bytes()) == sha256(data)
    to_stdout = logged_in("cp", f"{vm.name}:{WORKDIR}/in.bin", "-")
    assert to_stdout.status == 0 and sha256(to_stdout.out) == sha256(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "in.bin", "out.bin"]


def test_cp_from_stdin_and_into_a_guest_directory(logged_in: Cli, vm: LabVm,
                                                  tmp_path: Path) -> None:
    data = os.urandom(70_000)
    assert logged_in("cp", "-", f"{vm.name}:{WORKDIR}/piped", input=data).status == 0
    assert logged_in("cp", f"{vm.name}:{WORKDIR}/piped", "-").out == data
    local = tmp_path / "named.txt"
    local.write_bytes(b"named\n")
    assert logged_in("cp", str(local), f"{vm.name}:{WORKDIR}/").status == 0
    assert logged_in("exec", vm.name, "--", f"cat {WORKDIR}/named.txt").out == b"named\n"


def test_cp_errors_are_one_line_and_leave_nothing(logged_in: Cli, vm: LabVm,
                                                  tmp_path: Path) -> None:
    missing = logged_in("cp", f"{vm.name}:{WORKDIR}/nothing-here", str(tmp_path / "x"))
    assert missing.status == 1 and missing.stderr.startswith("error: VM.EXEC.1020"), missing
    assert list(tmp_path.iterdir()) == []  # no partial local file either
    relative = logged_in("cp", "-", f"{vm.name}:relative", input=b"x")
    assert relative.status == 1 and "not absolute" in relative.stderr, relative
    both_local = logged_in("cp", "a", "b")
    assert both_local.status == 2 and "one of SRC and DST" in both_local.stderr
