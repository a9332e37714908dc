"""Running ``.venv/bin/vmexec`` as a user does: a subprocess with its own config dir."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fixtures.server import ADMIN_PASSWORD

VMEXEC = str(Path(sys.executable).with_name("vmexec"))
#: Variables that would change which server, session or password the CLI uses.
_CLIENT_ENV = ("VMEXEC_SERVER", "VMEXEC_SESSION", "VMEXEC_PASSWORD", "XDG_CONFIG_HOME")


@dataclass(frozen=True)
class Run:
    """A finished ``vmexec`` process: its status and its output, as bytes and as text."""

    status: int
    out: bytes
    err: bytes

    @property
    def stdout(self) -> str:
        return self.out.decode()

    @property
    def stderr(self) -> str:
        return self.err.decode()

    def __str__(self) -> str:  # what an assertion message shows
        return f"status {self.status}\nstdout: {self.stdout!r}\nstderr: {self.stderr!r}"


@dataclass
class Cli:
    """Runs ``vmexec ARGS`` with its config in ``config_home`` and ``server`` as its server."""

    server: str
    config_home: Path

    @property
    def session_file(self) -> Path:
        return self.config_home / "vmexec" / "session.json"

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        full_env = {k: v for k, v in os.environ.items() if k not in _CLIENT_ENV}
        full_env.update({"XDG_CONFIG_HOME": str(self.config_home),
                         "VMEXEC_SERVER": self.server, **(extra or {})})
        return full_env

    def __call__(self, *args: str, input: bytes | None = None,
                 env: dict[str, str] | None = None, timeout: float = 180) -> Run:
        done = subprocess.run([VMEXEC, *args], input=input if input is not None else b"",
                              capture_output=True, env=self.env(env), timeout=timeout,
                              check=False)
        return Run(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """``vmexec ARGS`` running: its stdout and stderr are pipes, unbuffered."""
        return subprocess.Popen([VMEXEC, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=self.env(), bufsize=0)

    def login(self, password: str = ADMIN_PASSWORD) -> Run:
        run = self("login", "--password", password)
        assert run.status == 0, run
        return run


def one_error_line(run: Run) -> str:
    """The single ``error: ...`` line a failed command prints (asserts there is exactly one,
    and no traceback)."""
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run
    assert lines[0].startswith("error: "), run
    assert "Traceback" not in run.stderr
    return lines[0]


def processes_running(cli: Cli, vm_name: str, argv: str) -> int:
    """How many processes in the guest have exactly this command line (words by spaces),
    counted from /proc by a command run through ``cli``."""
    script = (f"n=0; for f in /proc/[0-9]*/cmdline; do "
              f"[ \"$(tr '\\0' ' ' < $f 2>/dev/null)\" = '{argv} ' ] && n=$((n+1)); done; "
              "echo $n")
    run = cli("exec", vm_name, "--", script)
    assert run.status == 0, run
    return int(run.stdout)
