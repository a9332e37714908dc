"""``vmexec login`` / ``logout``: the session file, the password sources, auth errors."""

from __future__ import annotations

import json
import stat

import httpx
import pytest
from fixtures.server import RunningServer

from cli.runner import Cli, one_error_line

pytestmark = pytest.mark.vm


def _valid(server: RunningServer, session: str) -> bool:
    reply = httpx.get(f"{server.url}/zstack/v1/accounts/sessions/{session}/valid", timeout=30)
    return bool(reply.json()["valid"])


def test_login_saves_a_valid_session_readable_by_the_user_only(cli: Cli,
                                                               server: RunningServer) -> None:
    run = cli("login", "--server", server.url, "--user", "admin", "--password", "password")
    assert run.status == 0, run
    assert str(cli.session_file) in run.stdout
    assert stat.S_IMODE(cli.session_file.stat().st_mode) == 0o600
    saved = json.loads(cli.session_file.read_text())
    assert saved["server"] == server.url and saved["account"] == "admin"
    assert _valid(server, saved["session"])


def test_login_reads_the_password_from_stdin_when_not_on_a_terminal(cli: Cli) -> None:
    run = cli("login", input=b"password\n")
    assert run.status == 0, run
    assert json.loads(cli.session_file.read_text())["session"]


def test_the_server_of_the_last_login_is_used_without_the_environment(
        cli: Cli, server: RunningServer) -> None:
    cli.login()
    run = cli("vm", "list", "--json", env={"VMEXEC_SERVER": ""})
    assert run.status == 0, run
    assert json.loads(run.stdout)["inventories"]


def test_wrong_password_is_one_line_with_the_code_and_exit_2(cli: Cli) -> None:
    run = cli("login", "--password", "wrong")
    assert run.status == 2
    assert one_error_line(run).startswith("error: ID.1000: ")
    assert not cli.session_file.exists()


def test_commands_without_login_say_so_and_exit_2(cli: Cli) -> None:
    run = cli("vm", "list")
    assert run.status == 2
    assert "not logged in" in one_error_line(run)
    assert "vmexec login" in run.stderr


def test_an_invalid_session_is_one_line_with_id_1001(cli: Cli) -> None:
    run = cli("exec", "vmexec-lab-1", "--", "true",
              env={"VMEXEC_SESSION": "0123456789abcdef0123456789abcdef"})
    assert run.status == 2
    assert one_error_line(run).startswith("error: ID.1001: ")


def test_logout_ends_the_session_and_forgets_it(cli: Cli, server: RunningServer) -> None:
    cli.login()
    session = json.loads(cli.session_file.read_text())["session"]
    run = cli("logout")
    assert run.status == 0, run
    assert not _valid(server, session)
    assert json.loads(cli.session_file.read_text())["session"] is None
    assert stat.S_IMODE(cli.session_file.stat().st_mode) == 0o600
    assert cli("vm", "list").status == 2


def test_an_unreachable_server_is_one_line_and_exit_1(cli: Cli) -> None:
    cli.login()
    run = cli("vm", "list", env={"VMEXEC_SERVER": "http://127.0.0.1:9"})
    assert run.status == 1
    assert one_error_line(run).startswith("error: cannot reach http://127.0.0.1:9: ")
