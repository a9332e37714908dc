"""``vmexec exec VM -- CMD`` live: output shows while the command runs, Ctrl-C cancels it in the
guest (exit 130), against a real server and real lab VMs, the CLI run as a subprocess."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import time

import pytest

from cli.runner import Cli, processes_running
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm

#: Seconds to wait for the CLI's next output before the test gives up.
READ_TIMEOUT = 60.0


def read_chunk(proc: subprocess.Popen[bytes]) -> bytes:
    """The next bytes the CLI wrote on stdout (b"" at its end)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READ_TIMEOUT)
    assert ready, "no output from the CLI"
    return os.read(proc.stdout.fileno(), 65536)


def read_until(proc: subprocess.Popen[bytes], wanted: bytes) -> bytes:
    seen = b""
    while wanted not in seen:
        chunk = read_chunk(proc)
        assert chunk, f"the CLI ended before writing {wanted!r}: {seen!r}"
        seen += chunk
    return seen


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, bytes, bytes]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_output_shows_while_the_command_runs(logged_in: Cli, lab_vms: list[LabVm]) -> None:
    vm = lab_vms[0]
    started = time.monotonic()
    proc = logged_in.start("exec", vm.name, "--", "for i in 1 2 3; do echo $i; sleep 1; done")
    chunks: list[tuple[float, bytes]] = []
    while chunk := read_chunk(proc):
        chunks.append((time.monotonic(), chunk))
    status, _, err = finish(proc)
    ended = time.monotonic()
    timeline = [(round(at - ended, 2), data) for at, data in chunks]  # relative to the end
    assert status == 0, err
    assert b"".join(data for _, data in chunks) == b"1\n2\n3\n", timeline
    # The first line came out on its own, before the next was written: a CLI that printed
    # at the end would have written all three in one piece.
    assert chunks[0][1] == b"1\n" and len(chunks) > 1, timeline
    assert started < chunks[0][0] < chunks[-1][0] <= ended, timeline


def test_the_first_line_shows_before_the_command_can_end(logged_in: Cli,
                                                         lab_vms: list[LabVm]) -> None:
    # The command waits (up to 60 s) for a file that the test creates only once it has read
    # the command's first line: a CLI that shows output only at the end cannot pass.
    vm = lab_vms[0]
    flag = f"/tmp/vmexec-live-{random.getrandbits(48):x}"
    proc = logged_in.start("exec", vm.name, "--",
                           f"echo waiting; for i in $(seq 300); do [ -e {flag} ] && "
                           "{ echo released; exit 0; }; sleep 0.2; done; echo alone; exit 9")
    assert read_until(proc, b"waiting\n") == b"waiting\n"
    assert proc.poll() is None
    assert logged_in("exec", vm.name, "--", f"touch {flag}").status == 0
    status, out, err = finish(proc)
    assert (status, out) == (0, b"released\n"), err
    logged_in("exec", vm.name, "--", f"rm -f {flag}")


def test_ctrl_c_cancels_the_command_in_the_guest_and_exits_130(logged_in: Cli,
                                                                lab_vms: list[LabVm]) -> None:
    vm = lab_vms[1]
    seconds = random.randrange(7000, 9000)  # a command line no other test runs
    proc = logged_in.start("exec", vm.name, "--",
                           f"echo started; sleep {seconds} & sleep {seconds}; echo never")
    read_until(proc, b"started\n")
    # Both sleeps run (a child in the background, one in the foreground): the tree.
    assert processes_running(logged_in, vm.name, f"sleep {seconds}") == 2
    proc.send_signal(signal.SIGINT)
    status, out, err = finish(proc)
    assert status == 130, (out, err)
    assert b"never" not in out
    assert b"cancelling execution " in err and b"Traceback" not in err, err
    assert processes_running(logged_in, vm.name, f"sleep {seconds}") == 0
    history = logged_in("history", "--json", "-q", f"command~=%sleep {seconds}%")
    assert history.status == 0, history
    assert '"state": "Cancelled"' in history.stdout, history


def test_a_timeout_still_exits_124_with_the_output_streamed(logged_in: Cli,
                                                           lab_vms: list[LabVm]) -> None:
    proc = logged_in.start("exec", lab_vms[0].name, "--timeout", "3", "--",
                           "echo started; sleep 30; echo never")
    assert read_until(proc, b"started\n") == b"started\n"
    status, out, err = finish(proc)
    assert (status, out) == (124, b""), err
    assert err.decode().splitlines()[-1].startswith("error: VM.EXEC.1001: "), err


def test_a_second_ctrl_c_detaches_and_says_how_to_follow(logged_in: Cli,
                                                         lab_vms: list[LabVm]) -> None:
    vm = lab_vms[2]
    proc = logged_in.start("exec", vm.name, "--", "echo started; sleep 600")
    read_until(proc, b"started\n")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)  # two presses, not one signal: the first is handled before the second
    proc.send_signal(signal.SIGINT)
    status, out, err = finish(proc)
    assert status == 130, (out, err)
    text = err.decode()
    assert "cancelling execution " in text and "detached from execution " in text, text
    uuid = text.split("detached from execution ")[1].split()[0]
    assert f"vmexec logs {uuid} -f" in text, text
    logged_in("cancel", uuid)  # whatever the detached cancel did, leave nothing running


def test_a_reader_that_goes_away_stops_the_command(logged_in: Cli,
                                                   lab_vms: list[LabVm]) -> None:
    # As `vmexec exec vm -- yes | head -1`: the CLI's stdout closes; the command must not
    # go on writing in the guest for nobody.
    vm = lab_vms[0]
    word = f"w{random.getrandbits(40):x}"
    proc = logged_in.start("exec", vm.name, "--", f"yes {word}")
    assert read_chunk(proc).startswith(f"{word}\n".encode())
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141, err  # 128 + SIGPIPE, as a shell shows it
    assert b"Traceback" not in err and b"Exception" not in err, err
    assert processes_running(logged_in, vm.name, f"yes {word}") == 0
