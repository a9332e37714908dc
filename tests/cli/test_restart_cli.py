"""``vmexec exec`` across a restart of the server: the live output stream breaks, the CLI
reconnects with ``Last-Event-ID`` and prints the rest once, then exits with the command's
status; real server (restarted on the same port and database), real lab VM."""

from __future__ import annotations

import os
import select
import subprocess
from pathlib import Path

import pytest
from fixtures.server import ServerFactory, free_port

from cli.runner import Cli
from vmexec.lab import LabVm

pytestmark = pytest.mark.vm


def read_line(proc: subprocess.Popen[bytes]) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready, "no output from the CLI"
    return proc.stdout.readline()


def test_the_cli_follows_the_command_across_a_server_restart(
        server_factory: ServerFactory, lab_vms: list[LabVm], tmp_path: Path) -> None:
    port = free_port()
    first = server_factory(port=port)
    cli = Cli(first.url, tmp_path / "config")
    cli.login()
    # The command waits for a file the test creates once the new server is up.
    flag = f"/tmp/vmexec-restart-{os.getpid()}"
    proc = cli.start("exec", lab_vms[0].name, "--",
                     f"echo before; for i in $(seq 300); do [ -e {flag} ] && break; "
                     f"sleep 0.2; done; rm -f {flag}; echo after; exit 7")
    try:
        assert read_line(proc) == b"before\n"
        first.stop()
        server_factory(port=port)  # same database, same port: the CLI's next try reaches it
        assert cli("exec", lab_vms[0].name, "--", f"touch {flag}").status == 0
        # Resumed after "before" (not replayed from the start), on the new server, to its
        # end.
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert (proc.returncode, out) == (7, b"after\n"), err
    assert b"Traceback" not in err
