"""``vmexec passwd`` end to end: the real CLI process against a real server on loopback
(issue 10, B11). No VM is needed to change a password: the server's inventory may be empty."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from fixtures.server import RunningServer

from cli.runner import Cli, one_error_line


@pytest.fixture
def server(vmexec_server: RunningServer) -> RunningServer:
    return vmexec_server


def _cli(server: RunningServer, home: Path) -> Cli:
    return Cli(server.url, home)


def _valid(server: RunningServer, session: str) -> bool:
    reply = httpx.get(f"{server.url}/zstack/v1/accounts/sessions/{session}/valid", timeout=30)
    return bool(reply.json()["valid"])


def test_passwd_changes_the_password_and_ends_other_sessions(
        server: RunningServer, tmp_path: Path) -> None:
    cli, elsewhere = _cli(server, tmp_path / "here"), _cli(server, tmp_path / "elsewhere")
    cli.login()
    elsewhere.login()
    before = json.loads(cli.session_file.read_text())["session"]

    # No terminal: the current password, then the new one, one a line on stdin.
    run = cli("passwd", input=b"password\nn3w-secret\n")
    assert run.status == 0, run
    assert "changed" in run.stdout

    after = json.loads(cli.session_file.read_text())["session"]
    assert after != before and _valid(server, after)  # this CLI is logged in again
    assert not _valid(server, before)
    ended = elsewhere("vm", "list", "--json")                     # the other one is out
    assert ended.status == 2 and "ID.1001" in one_error_line(ended)
    assert cli("vm", "list", "--json").status == 0

    assert cli("login", "--password", "password").status == 2
    assert cli("login", "--password", "n3w-secret").status == 0


def test_passwd_with_a_wrong_current_password_changes_nothing(
        server: RunningServer, tmp_path: Path) -> None:
    cli = _cli(server, tmp_path)
    run = cli("passwd", "--old-password", "wrong", "--new-password", "whatever")
    assert run.status == 2
    assert one_error_line(run).startswith("error: ID.1000: ")
    assert cli("login", "--password", "password").status == 0


def test_passwd_takes_the_passwords_from_the_environment(
        server: RunningServer, tmp_path: Path) -> None:
    cli = _cli(server, tmp_path)
    run = cli("passwd", "--user", "admin",
              env={"VMEXEC_PASSWORD": "password", "VMEXEC_NEW_PASSWORD": "from-env"})
    assert run.status == 0, run
    assert cli("login", "--password", "from-env").status == 0
