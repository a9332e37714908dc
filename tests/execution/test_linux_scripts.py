"""The exact guest-exec text of :class:`LinuxPlatform` run under the host's ``bash``, ``dash``
and ``busybox sh`` with a temporary run directory: what :func:`parse_status` reads from the
status line and the ``.rc`` file, for exit codes, signals, output placement and setup failures.
No VM: each case costs a few milliseconds (the VM tests prove the same in a real guest)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmexec.execution.errors import InvalidExecRequest
from vmexec.execution.linux import INLINE_MAX, LinuxPlatform
from vmexec.execution.linux.platform import RUN_FILE_KINDS
from vmexec.execution.models import ExecRequest, Shell
from vmexec.execution.platform import KillReason, Launch
from vmexec.execution.status import Status, Where, parse_status, split_inline

PLATFORM = LinuxPlatform()
RUN_ID = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class HostShell:
    """A host shell standing in for the guest's: how to start it, and the ``interpreter`` the
    engine would pass for it (``bash``, or ``/bin/sh`` for a guest without bash)."""

    command: tuple[str, ...]
    interpreter: str

    @property
    def is_bash(self) -> bool:
        return self.interpreter == "bash"


SHELLS = {
    "bash": HostShell(("bash",), "bash"),
    "dash": HostShell(("dash",), "/bin/sh"),
    "busybox": HostShell(("busybox", "sh"), "/bin/sh"),
}


@pytest.fixture(params=list(SHELLS))
def shell(request: pytest.FixtureRequest) -> HostShell:
    return SHELLS[request.param]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return tmp_path / "run"  # created by the prelude, as in a fresh guest


@dataclass
class Ran:
    returncode: int
    status: Status | None
    stdout: bytes  # the agent's stdout after the status line
    stderr: bytes  # the agent's stderr
    rc_file: Status | None


def execute(launch: Launch, shell: HostShell, run_dir: Path) -> Ran:
    """Run one guest-exec as the agent would, with ``shell`` as the program it starts."""
    assert launch.path in ("bash", "/bin/sh")
    program = ("bash",) if launch.path == "bash" else shell.command
    proc = subprocess.run([*program, *launch.args], input=launch.input_data or b"",
                          capture_output=True, timeout=30, check=False)
    status, rest = split_inline(proc.stdout)
    rc = run_dir / f"{RUN_ID}.rc"
    return Ran(proc.returncode, status, rest, proc.stderr,
               parse_status(rc.read_bytes()) if rc.exists() else None)


def run(host_shell: HostShell, run_dir: Path, command: str, **kw: object) -> Ran:
    request = ExecRequest(command, **kw)  # type: ignore[arg-type]
    launch = PLATFORM.launch(request, RUN_ID, run_dir=str(run_dir),
                             interpreter=host_shell.interpreter)
    return execute(launch, host_shell, run_dir)


def output(run_dir: Path, kind: str) -> bytes:
    return (run_dir / f"{RUN_ID}.{kind}").read_bytes()


@pytest.mark.parametrize(("command", "code"), [("true", 0), ("false", 1), ("exit 42", 42),
                                               ("no-such-command-here", 127)])
def test_exit_codes(shell: HostShell, run_dir: Path, command: str, code: int) -> None:
    ran = run(shell, run_dir, command)
    assert ran.status is not None
    assert (ran.status.exit_code, ran.status.timed_out, ran.status.setup_error) == (
        code, False, None)
    assert ran.status.run_dir == str(run_dir)
    assert ran.rc_file is not None and ran.rc_file.exit_code == code
    assert ran.returncode == code  # what the agent reports, too


def test_empty_output(shell: HostShell, run_dir: Path) -> None:
    ran = run(shell, run_dir, "true")
    assert ran.status is not None
    assert (ran.status.stdout_at, ran.status.stderr_at) == (Where.EMPTY, Where.EMPTY)
    assert (ran.stdout, ran.stderr) == (b"", b"")
    assert output(run_dir, "out") == output(run_dir, "err") == b""


def test_small_text_output_inline_under_bash_in_files_under_sh(
        shell: HostShell, run_dir: Path) -> None:
    ran = run(shell, run_dir, "echo out; echo err >&2; printf 'no newline'")
    assert ran.status is not None
    assert output(run_dir, "out") == b"out\nno newline"
    assert output(run_dir, "err") == b"err\n"
    if shell.is_bash:
        assert (ran.status.stdout_at, ran.status.stderr_at) == (Where.INLINE, Where.INLINE)
        assert (ran.stdout, ran.stderr) == (b"out\nno newline", b"err\n")
    else:
        assert (ran.status.stdout_at, ran.status.stderr_at) == (Where.FILE, Where.FILE)
        assert (ran.stdout, ran.stderr) == (b"", b"")


@pytest.mark.parametrize("command", [
    f"head -c {INLINE_MAX + 1} /dev/zero | tr '\\0' a",  # one byte over the inline limit
    r"printf 'a\000b'",  # binary: a NUL byte
])
def test_large_or_binary_output_stays_in_its_file(
        shell: HostShell, run_dir: Path, command: str) -> None:
    ran = run(shell, run_dir, command)
    assert ran.status is not None
    assert (ran.status.stdout_at, ran.status.stderr_at) == (Where.FILE, Where.EMPTY)
    assert ran.stdout == b""
    assert len(output(run_dir, "out")) in (INLINE_MAX + 1, 3)


def test_output_of_exactly_the_inline_limit_is_inline_under_bash(
        shell: HostShell, run_dir: Path) -> None:
    ran = run(shell, run_dir, f"head -c {INLINE_MAX} /dev/zero | tr '\\0' a")
    assert ran.status is not None
    assert ran.status.stdout_at is (Where.INLINE if shell.is_bash else Where.FILE)
    assert ran.stdout == (b"a" * INLINE_MAX if shell.is_bash else b"")


def test_terminated_by_itself_reports_143(shell: HostShell, run_dir: Path) -> None:
    ran = run(shell, run_dir, "echo before; kill -TERM $$; echo after")
    assert ran.status is not None and ran.status.exit_code == 143
    assert ran.rc_file is not None and ran.rc_file.exit_code == 143
    assert output(run_dir, "out") == b"before\n"


def test_killed_by_sigkill_leaves_no_status(shell: HostShell, run_dir: Path) -> None:
    # No trap runs: the agent's own report (signal 9) is all there is, and the output is
    # in the file.
    ran = run(shell, run_dir, "echo before; kill -KILL $$")
    assert ran.returncode == -signal.SIGKILL
    assert ran.status is None and ran.rc_file is None
    assert output(run_dir, "out") == b"before\n"
    assert int(output(run_dir, "pid")) > 0


def test_pid_file_holds_the_runs_first_process(shell: HostShell, run_dir: Path) -> None:
    ran = run(shell, run_dir, "echo $$")
    assert ran.status is not None
    assert output(run_dir, "pid") == output(run_dir, "out")


def test_stdin_env_working_directory_and_marker(
        shell: HostShell, run_dir: Path, tmp_path: Path) -> None:
    ran = run(shell, run_dir,
              'read -r line; echo "got $line"; echo "$A|$B"; pwd; cat; echo "$VMEXEC_RUN_ID"',
              stdin=b"first\nrest\n", env={"A": "x y", "B": "it's \"q\" $HOME `id`"},
              working_directory=str(tmp_path))
    assert ran.status is not None and ran.status.exit_code == 0
    assert output(run_dir, "out").decode() == (
        f"got first\nx y|it's \"q\" $HOME `id`\n{tmp_path}\nrest\n{RUN_ID}\n")


def test_environment_cannot_reach_the_scripts_variables(shell: HostShell,
                                                        run_dir: Path) -> None:
    with pytest.raises(InvalidExecRequest, match="__vmexec_f"):
        run(shell, run_dir, "true", env={"__vmexec_f": "/tmp/elsewhere"})
    # The supervisor's own names are not the user's either: a #! script with env "user".
    ran = run(shell, run_dir, "#!/bin/sh\necho \"$user\"", env={"user": "root2"})
    assert ran.status is not None and ran.status.exit_code == 0
    assert output(run_dir, "out") == b"root2\n"


def test_script_line_numbers_are_the_users(shell: HostShell, run_dir: Path) -> None:
    ran = run(shell, run_dir, "true\nno-such-command-here\n")
    assert ran.status is not None and ran.status.exit_code == 127
    message = output(run_dir, "err").decode()
    assert "no-such-command-here: " in message and "not found" in message
    # busybox numbers lines its own way (none at all for a plain `sh -c`); bash and dash
    # count from the first line of the text, which the prelude shares with the script.
    if shell.command != SHELLS["busybox"].command:
        assert ("line 2:" if shell.is_bash else ": 2:") in message, message


def test_shell_sh_is_not_bash(run_dir: Path) -> None:
    ran = run(SHELLS["dash"], run_dir, 'echo "${BASH_VERSION:-plain sh}"', shell=Shell.SH)
    assert output(run_dir, "out") == b"plain sh\n"
    assert ran.status is not None and ran.status.stdout_at is Where.FILE


def test_shebang_script(shell: HostShell, run_dir: Path) -> None:
    ran = run(shell, run_dir, "#!/usr/bin/env sh\necho from \"$0\"\nexit 3\n")
    assert ran.status is not None and ran.status.exit_code == 3
    assert output(run_dir, "out") == f"from {run_dir}/{RUN_ID}.sh\n".encode()


@pytest.fixture
def traversable_dir() -> Iterator[Path]:
    """A directory other users may pass through, as /var/lib is in a guest (pytest's own
    temporary directories are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="vmexec-test-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def test_run_as_another_user(shell: HostShell, traversable_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("run-as needs root, as vmexec's guest agent has")
    run_dir = traversable_dir / "run"
    ran = run(shell, run_dir, "id -un; pwd", run_as="nobody", working_directory="/")
    assert ran.status is not None and ran.status.exit_code == 0, output(run_dir, "err")
    assert output(run_dir, "out") == b"nobody\n/\n"


@pytest.mark.parametrize(("request_kw", "reason", "message"), [
    ({"command": "pwd", "working_directory": "/no/such/dir"}, "working-directory-missing",
     "working directory /no/such/dir does not exist"),
    ({"command": "#!/no/such/interpreter\necho 1"}, "interpreter-missing",
     "interpreter /no/such/interpreter not found"),
    ({"command": "#!/usr/bin/env no-such-interpreter\necho 1"}, "interpreter-missing",
     "interpreter no-such-interpreter not found"),
    ({"command": "id", "run_as": "nosuchuser"}, "user-missing",
     "user nosuchuser does not exist"),
])
def test_setup_failures(shell: HostShell, run_dir: Path, request_kw: dict[str, str],
                        reason: str, message: str) -> None:
    launch = PLATFORM.launch(ExecRequest(**request_kw), RUN_ID,  # type: ignore[arg-type]
                             run_dir=str(run_dir), interpreter=shell.interpreter)
    ran = execute(launch, shell, run_dir)
    assert ran.status == Status(exit_code=None, setup_error=reason)
    assert message in ran.stderr.decode()
    assert ran.rc_file is None and not (run_dir / f"{RUN_ID}.out").exists()


@pytest.mark.parametrize("command", ["echo x", "#!/bin/sh\necho x"])
def test_unwritable_run_dir(shell: HostShell, tmp_path: Path, command: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run directory's parent should be")
    ran = run(shell, blocker / "run", command)
    assert ran.status == Status(exit_code=None, setup_error="run-dir-unwritable")


@pytest.mark.parametrize("run_dir", ["relative/dir", "/with space", "/a/../b", "/x;rm", ""])
def test_run_dir_must_be_a_safe_absolute_path(run_dir: str) -> None:
    with pytest.raises(InvalidExecRequest, match="run directory"):
        PLATFORM.launch(ExecRequest("true"), RUN_ID, run_dir=run_dir, interpreter="bash")


def _kill_while_running(shell: HostShell, run_dir: Path, kill_dir: Path,
                        why: KillReason) -> bytes:
    """Start a run with a background child in ``run_dir``, kill it with the kill script
    told the run directory is ``kill_dir``; the run's reply on the agent's pipe."""
    launch = PLATFORM.launch(ExecRequest("echo started; sleep 60 & sleep 61; echo never"),
                             RUN_ID, run_dir=str(run_dir), interpreter=shell.interpreter)
    program = ("bash",) if launch.path == "bash" else shell.command
    with subprocess.Popen([*program, *launch.args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as proc:
        while len(_marked_processes()) < 2:  # both sleeps started
            assert proc.poll() is None
        pid = int(output(run_dir, "pid"))
        kill = PLATFORM.kill(RUN_ID, pid, str(kill_dir), why=why)
        with subprocess.Popen([*shell.command, *kill.args]) as killer:
            # Reap the run at once, as the guest agent does: the kill waits while it exists.
            stdout, _ = proc.communicate(timeout=30)
            assert killer.wait(timeout=30) == 0
    return stdout


@pytest.mark.parametrize("why", list(KillReason))
def test_kill_ends_the_run_and_its_children(shell: HostShell, run_dir: Path,
                                            why: KillReason) -> None:
    status, _ = split_inline(_kill_while_running(shell, run_dir, run_dir, why))
    assert status is not None and status.exit_code == 143
    # The marker says why, for a vmexec that restarts: only that one.
    assert [p.name for p in run_dir.glob(f"{RUN_ID}.[tc]*")] == [f"{RUN_ID}.{why.value}"]
    assert output(run_dir, "out") == b"started\n"
    assert _marked_processes() == []  # the background sleep is gone too


def test_kill_spares_a_process_that_took_the_runs_pid(shell: HostShell, run_dir: Path) -> None:
    """A run's first process has ended and its pid is used again (often soon: pid_max is
    32768 on many guests): the deadline's kill (or the watchdog's) must not kill whatever
    process has that pid now."""
    run_dir.mkdir()
    with subprocess.Popen(["sleep", "60"]) as stranger:
        try:
            kill = PLATFORM.kill(RUN_ID, stranger.pid, str(run_dir))
            subprocess.run([*shell.command, *kill.args], check=True, timeout=30)
            assert stranger.poll() is None  # still running
        finally:
            stranger.kill()


def test_watchdog_gives_up_once_vmexec_collected_the_run(shell: HostShell,
                                                          run_dir: Path) -> None:
    """The run ended, vmexec collected it and deleted its files; the watchdog must not kill
    at the deadline (the pid it was given may be another process's by then)."""
    run_dir.mkdir()
    with subprocess.Popen(["sleep", "60"]) as stranger:
        try:
            watchdog = PLATFORM.watchdog(RUN_ID, stranger.pid, str(run_dir), 1)
            subprocess.run([*shell.command, *watchdog.args], check=True, timeout=30)
            assert stranger.poll() is None
        finally:
            stranger.kill()


def test_kill_kills_even_when_it_cannot_leave_its_marker(shell: HostShell, run_dir: Path,
                                                        tmp_path: Path) -> None:
    # A full disk or a run directory that went away: in dash and busybox sh a failed
    # redirection of a special built-in (`: >file`) ended the whole script, which then
    # killed nothing, and the command outlived its timeout.
    _kill_while_running(shell, run_dir, tmp_path / "gone", KillReason.TIMEOUT)
    assert _marked_processes() == []


def _marked_processes() -> list[Path]:
    """The processes whose environment carries the run's marker (its children)."""
    def marked(environ: Path) -> bool:
        try:
            return f"VMEXEC_RUN_ID={RUN_ID}".encode() in environ.read_bytes()
        except OSError:
            return False
    return [e for e in Path("/proc").glob("[0-9]*/environ") if marked(e)]


def test_cleanup_deletes_the_named_runs_and_runs_older_than_the_retention(
        shell: HostShell, run_dir: Path) -> None:
    recent, old = "e" * 32, "f" * 32
    kinds = ("out", "err", "rc", "pid", "sh", "timeout")
    run_dir.mkdir()
    for run_id in (RUN_ID, recent, old):
        for kind in kinds:
            (run_dir / f"{run_id}.{kind}").write_text(kind)
    for name in (f"{old}.out", f"{old}.rc", "agent.conf"):  # older than a week
        os.utime(run_dir / name if name != "agent.conf" else _touch(run_dir / name),
                 (0, time.time() - 8 * 86400))
    cleanup = PLATFORM.cleanup(str(run_dir), [RUN_ID], retention=7 * 86400)
    subprocess.run([*shell.command, *cleanup.args], check=True, timeout=30)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        [*(f"{recent}.{k}" for k in kinds), *(f"{old}.{k}" for k in kinds if k not in (
            "out", "rc")), "agent.conf"])


def test_cleanup_without_a_retention_deletes_only_the_named_runs(
        shell: HostShell, run_dir: Path) -> None:
    """The sweep for old files is a process more (``find``): only some cleanups ask for it."""
    old, other = "f" * 32, "e" * 32
    run_dir.mkdir()
    for run_id in (RUN_ID, old, other):
        for kind in RUN_FILE_KINDS:
            (run_dir / f"{run_id}.{kind}").write_text(kind)
    for kind in RUN_FILE_KINDS:
        os.utime(run_dir / f"{old}.{kind}", (0, time.time() - 8 * 86400))
    cleanup = PLATFORM.cleanup(str(run_dir), [RUN_ID], retention=None)
    subprocess.run([*shell.command, *cleanup.args], check=True, timeout=30)
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(
        f"{run_id}.{kind}" for run_id in (old, other) for kind in RUN_FILE_KINDS)


def test_cleanup_deletes_a_batch_of_runs_with_one_rm_naming_each_file(
        shell: HostShell, run_dir: Path, tmp_path: Path) -> None:
    """Every kind of a run's files goes, each named: no pattern (a pattern reads the whole
    directory once per run) and one ``rm`` for the batch (a process per run would cost the
    guest as much as the commands did). A fake ``rm`` first on PATH logs its calls (busybox
    sh may run its own ``rm`` applet in the shell's process: no process, nothing to count)."""
    run_ids = [f"{i:032x}" for i in range(1, 41)]
    run_dir.mkdir()
    for run_id in run_ids:
        for kind in RUN_FILE_KINDS:
            (run_dir / f"{run_id}.{kind}").write_text(kind)
    (run_dir / f"{run_ids[0]}.notes").write_text("not a kind of run file: stays")
    bin_dir, log = tmp_path / "bin", tmp_path / "rm.log"
    bin_dir.mkdir()
    (bin_dir / "rm").write_text(f'#!/bin/sh\necho "$#" >>{log}\nexec /bin/rm "$@"\n')
    (bin_dir / "rm").chmod(0o755)
    cleanup = PLATFORM.cleanup(str(run_dir), run_ids, retention=None)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run([*shell.command, *cleanup.args], check=True, timeout=30, env=env)
    assert [p.name for p in run_dir.iterdir()] == [f"{run_ids[0]}.notes"]
    if shell.command[0] != "busybox":
        assert log.read_text().split() == [str(2 + len(run_ids) * len(RUN_FILE_KINDS))]


def _touch(path: Path) -> Path:
    path.write_text("not a run's file")
    return path


@pytest.fixture
def full_disk_run_dir(tmp_path: Path) -> Iterator[Path]:
    """A run directory on a 64 KiB tmpfs of its own: a disk that fills up."""
    if os.geteuid() != 0:
        pytest.fail("mounting a small tmpfs needs root")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                   check=True)
    try:
        yield mount_point / "run"
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_output_that_fills_the_disk_is_reported_unstored(
        shell: HostShell, full_disk_run_dir: Path) -> None:
    ran = run(shell, full_disk_run_dir, "head -c 200000 /dev/zero; echo still here")
    assert ran.status is not None and ran.status.unstored
    assert ran.status.exit_code == 1  # the last echo could not write either
    assert ran.rc_file is None
    assert len(output(full_disk_run_dir, "out")) < 200000


def test_output_that_fits_is_not_unstored(shell: HostShell, full_disk_run_dir: Path) -> None:
    ran = run(shell, full_disk_run_dir, "head -c 20000 /dev/zero")
    assert ran.status is not None and not ran.status.unstored
    assert ran.rc_file is not None and ran.rc_file.exit_code == 0


@pytest.mark.parametrize("command", ["echo x", "#!/bin/sh\necho x"])
def test_a_full_disk_before_the_run_is_a_setup_failure(
        shell: HostShell, full_disk_run_dir: Path, command: str) -> None:
    full_disk_run_dir.mkdir()
    filler = full_disk_run_dir / "filler"
    with filler.open("wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * 128 * 1024)
    ran = run(shell, full_disk_run_dir, command)
    assert ran.status == Status(exit_code=None, setup_error="run-dir-unwritable")
    message = ran.stderr.decode()
    assert "cannot write" in message and str(full_disk_run_dir) in message, message


def run_staged(host_shell: HostShell, run_dir: Path, request: ExecRequest,
               staged: tuple[str, ...]) -> Ran:
    """Run ``request`` with the inputs ``staged`` in run files, as the engine writes them
    (guest-file-write) before the launch when the request would be too large."""
    run_dir.mkdir(mode=0o700, exist_ok=True)
    for kind in staged:
        (run_dir / f"{RUN_ID}.{kind}").write_bytes(PLATFORM.staged_input(request, kind))
    launch = PLATFORM.launch(request, RUN_ID, run_dir=str(run_dir),
                             interpreter=host_shell.interpreter, staged=staged)
    if "in" in staged:
        assert launch.input_data is None
    if "env" in staged:
        assert not [a for a in launch.args if "=" in a and a.split("=", 1)[0] in request.env]
    return execute(launch, host_shell, run_dir)


def test_stdin_from_its_run_file(shell: HostShell, run_dir: Path) -> None:
    data = os.urandom(1024 * 1024)
    ran = run_staged(shell, run_dir, ExecRequest("wc -c; echo end", stdin=data), ("in",))
    assert ran.status is not None and ran.status.exit_code == 0
    assert output(run_dir, "out").split() == [b"1048576", b"end"]


TRICKY_ENV = {"QUOTES": "it's \"q\" and '' \\", "LINES": "a\nb\n", "DOLLAR": "$HOME $(id) `id`",
              "EMPTY": "", "BIG": "x" * 100_000}


def test_environment_from_its_run_file(shell: HostShell, run_dir: Path) -> None:
    command = "".join(f'printf "%s|" "${name}"; ' for name in TRICKY_ENV) + "env | grep -c ^BIG="
    ran = run_staged(shell, run_dir, ExecRequest(command, env=TRICKY_ENV), ("env",))
    assert ran.status is not None and ran.status.exit_code == 0, output(run_dir, "err")
    assert output(run_dir, "out").decode() == "".join(f"{v}|" for v in TRICKY_ENV.values()) + "1\n"


@pytest.mark.parametrize("command", ['echo "$A"; cat; exit 3', '#!/bin/sh\necho "$A"; cat; exit 3'])
def test_script_stdin_and_environment_all_from_run_files(
        shell: HostShell, run_dir: Path, command: str) -> None:
    request = ExecRequest(command, env={"A": "from env"}, stdin=b"from stdin\n")
    ran = run_staged(shell, run_dir, request, ("in", "env", "sh"))
    assert ran.status is not None and ran.status.exit_code == 3, output(run_dir, "err")
    assert output(run_dir, "out") == b"from env\nfrom stdin\n"


def test_an_environment_value_linux_cannot_pass_on_is_refused() -> None:
    with pytest.raises(InvalidExecRequest, match="at most 131071 bytes per variable"):
        PLATFORM.launch(ExecRequest("true", env={"BIG": "x" * 400_000}), RUN_ID,
                        run_dir="/run/vmexec", interpreter="bash")


def test_a_run_directory_moved_away_is_not_a_full_disk(shell: HostShell, run_dir: Path) -> None:
    ran = run(shell, run_dir, f"mv {run_dir} {run_dir}.saved && : >{run_dir}")
    assert ran.status is not None and not ran.status.unstored
    assert ran.status.exit_code == 0


def test_errexit_in_the_script_does_not_cut_the_exit_trap_short(
        shell: HostShell, run_dir: Path) -> None:
    ran = run(shell, run_dir, "set -eu; echo a; false; echo b")
    assert ran.status is not None and ran.status.exit_code == 1
    assert ran.rc_file is not None and ran.rc_file.exit_code == 1
    assert output(run_dir, "out") == b"a\n"


def test_errexit_and_a_full_disk(shell: HostShell, full_disk_run_dir: Path) -> None:
    ran = run(shell, full_disk_run_dir, "set -e; head -c 200000 /dev/zero")
    assert ran.status is not None and ran.status.unstored and ran.status.exit_code == 1


def test_cleanup_keeps_the_files_of_a_run_still_going(shell: HostShell, run_dir: Path) -> None:
    running, gone, reused = RUN_ID, "e" * 32, "f" * 32
    run_dir.mkdir()
    # A run's first process names its run id on its command line, as the launch does (not
    # the script's last command alone: a shell may exec that, its command line then is
    # `sleep 30`).
    with subprocess.Popen(["sh", "-c", "sleep 30; :", "sh", running]) as alive:
        try:
            for run_id, pid in ((running, alive.pid), (gone, 999_999_999),
                                (reused, os.getpid())):  # a live pid of another process
                (run_dir / f"{run_id}.pid").write_text(f"{pid}\n")
                (run_dir / f"{run_id}.out").write_text("output")
            cleanup = PLATFORM.cleanup(str(run_dir), [running, gone, reused], retention=86400)
            proc = subprocess.run([*shell.command, *cleanup.args], check=True, timeout=30,
                                  capture_output=True)
        finally:
            alive.kill()
    assert proc.stdout.split() == [running.encode()]  # vmexec asks again later
    assert sorted(p.name for p in run_dir.iterdir()) == [f"{running}.out", f"{running}.pid"]
